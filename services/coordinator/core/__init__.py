"""The coordinator's pure core: cases, routing, clocks, playbooks, tasks and 督办, meetings. No I/O here: policies and
``now`` are arguments, results are ``Change`` values the adapters make durable in one transaction."""
