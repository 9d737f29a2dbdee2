"""ElastAlert2 rule types for bench/elastalert_compare.py (imported by ElastAlert2 from its own venv).

`TimedSpikeRule` is the stock `SpikeRule` plus one field on each match, `qf_fired_at`: the timestamp of the post
whose arrival made the spike fire. A stock spike match is the first post of the current window, whose time says
nothing about when the alert would have gone out.
"""

from elastalert.ruletypes import SpikeRule
from elastalert.util import lookup_es_key


class TimedSpikeRule(SpikeRule):
    def handle_event(self, event, count, qk="all"):
        self._qf_now = lookup_es_key(event, self.ts_field)
        super().handle_event(event, count, qk)

    def add_match(self, match, qk):
        match = dict(match)
        match["qf_fired_at"] = self._qf_now
        super().add_match(match, qk)
