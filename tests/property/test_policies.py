"""Policy YAML: every loader (grader, coordinator, publisher, the publisher's channel adapters, the gateway's access
policy, trust files, lexicons) given a real policy with hostile edits, or anything else, returns its policy or
raises its own documented error, and an accepted policy's durations can be added to a time without overflowing
(``cooldown: 99999999999d`` used to be accepted and crash the grader at its first cool-down). Under them all,
``safe_yaml.load_yaml`` returns plain data or ``SafeYamlError``.

The loaders are one parser family here, ``policy YAML``: its property runs the 5,000 examples, each on a loader drawn
from the list (several hundred per loader); ``load_yaml`` has 5,000 of its own.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st
from qingfeng.rpc.credentials import TrustConfigError, generate_key, parse_trust, public_pem, trust_yaml
from qingfeng.safe_yaml import SafeYamlError, load_yaml
from qingfeng.text.lexicon import LexiconError, _read

from gateway.access import AccessPolicyError, parse_access_policy
from services.coordinator.adapters.policy_yaml import PolicyFileError, load_directory, load_playbooks, load_routing
from services.grader.adapters.policy_yaml import PolicyLoadError, load_policy
from services.publisher.adapters import policy_yaml as publisher
from services.publisher.channels.factory import ChannelConfigError
from services.publisher.channels.factory import load_channels as load_channel_adapters
from tests.property._support import run
from tests.property.strategies import any_text

ROOT = Path(__file__).resolve().parents[2]
COORDINATOR = "services/coordinator/policies"
ACCESS = """\
version: "1"
identities:
  - name: office-analyst
    agency: opinion_office
    roles: [analyst, see_tips]
    token_sha256: "%s"
    grants: [/qingfeng.v1.GraderService/GetEvent, /qingfeng.v1.SearchService/Search]
    expires_at: 2030-01-01T00:00:00Z
    search: {region_codes: ["110000"], source_ids: [weibo]}
""" % ("a" * 64)
TRUST = trust_yaml([("gateway", public_pem(generate_key()), True, ["/qingfeng.v1.GraderService/GetEvent"])])


def _channel_adapters(text: str) -> object:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "channels.yaml")
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return load_channel_adapters(path)


def _file(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


# (name, loader, its documented error, real files to start from)
LOADERS: tuple[tuple[str, Callable[[str], object], type[Exception], tuple[str, ...]], ...] = (
    ("grader.load_policy", load_policy, PolicyLoadError,
     (_file("services/grader/policies/four_level.v1.yaml"), _file("services/grader/policies/three_level.v1.yaml"))),
    ("coordinator.load_routing", lambda t: load_routing("routing.yaml", t), PolicyFileError,
     (_file(f"{COORDINATOR}/routing.yaml"), _file(f"{COORDINATOR}/routing_three_tier.yaml"))),
    ("coordinator.load_playbooks", lambda t: load_playbooks("playbooks.yaml", t), PolicyFileError,
     (_file("services/coordinator/policies/playbooks.yaml"),)),
    ("coordinator.load_directory", lambda t: load_directory("directory.yaml", t), PolicyFileError,
     (_file("services/coordinator/policies/directory.yaml"),)),
    ("publisher.load_templates", publisher.load_templates, publisher.PolicyLoadError,
     (_file("services/publisher/policies/templates.yaml"),)),
    ("publisher.load_signoff", publisher.load_signoff, publisher.PolicyLoadError,
     (_file("services/publisher/policies/signoff.yaml"),)),
    ("publisher.load_channels", publisher.load_channels, publisher.PolicyLoadError,
     (_file("services/publisher/policies/channels.yaml"),)),
    ("publisher.channels.load_channels", _channel_adapters, ChannelConfigError,
     (_file("services/publisher/channels/channels.example.yaml"),)),
    ("gateway.parse_access_policy", parse_access_policy, AccessPolicyError, (ACCESS,)),
    ("credentials.parse_trust", parse_trust, TrustConfigError, (TRUST,)),
    ("lexicon file", lambda t: _read("extra.yaml", t), LexiconError,
     (_file("libs/qingfeng/text/lexicons/offline.yaml"), _file("libs/qingfeng/text/lexicons/officials.yaml"),
      _file("libs/qingfeng/text/lexicons/stopwords.yaml"))),
)  # fmt: skip

SCALARS = (
    "[posts]", "!!int abc", "9" * 400, "-" + "9" * 400, "99999999999d", "99999999999h", "99999999999m", "1e400",
    "999999999999999999999s", "-1", "-5m", "0", "0s", ".nan", ".inf", "-.inf", "~", "null", "{}", "[]", "''", "yes",
    "&a x", "*a", "!!python/object/apply:os.system ['true']", "!!set {a}", "!custom x", "0x7fffffffffffffffffff",
    "2024-13-45", "2024-05-01T12:00:00", "12:30:00", "1_000", "0o777", "!!binary ===", "!!timestamp x", "!!float x",
    "[[[[[[[[", "{a: [b, {c: d}]}", "next_working_day", "25:99", "red", "blue", "none", "\"\\ud800\"", "'\x00'",
    "x\ty", "\"" + "x" * 70_000 + "\"",
)  # fmt: skip
_values = st.one_of(st.sampled_from(SCALARS), any_text)
_edits = st.lists(
    st.tuples(st.sampled_from(["value", "delete", "duplicate", "indent", "insert"]), st.integers(0, 500), _values),
    min_size=1,
    max_size=3,
)


def edit(text: str, edits: list[tuple[str, int, str]]) -> str:
    """``text`` with line edits: a value replaced, a line deleted, repeated, indented, or a line inserted."""
    lines = text.splitlines()
    for kind, index, value in edits:
        if not lines:
            break
        i = index % len(lines)
        if kind == "value":
            head, colon, _ = lines[i].partition(": ")
            lines[i] = f"{head}{colon or ': '}{value}"
        elif kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "indent":
            lines[i] = "  " + lines[i]
        else:
            lines.insert(i, value)
    return "\n".join(lines) + "\n"


def _bomb() -> str:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    return "\n".join(lines) + "\n"


HOSTILE_DOCUMENTS = (
    "", "---\n---\n", "[" * 10_000, "a:\n" + "  - " * 2_000 + "x", _bomb(), "!!python/object:os.system {}",
    "version: 1\n" * 2, "? [a]\n: b\n", "1: x", "\ufeffversion: 1", "%YAML 1.1\n--- x", "a: b\n\x00",
)  # fmt: skip
# None: edit one of the loader's real files instead.
_other_documents = st.one_of(st.none(), st.none(), st.none(), st.sampled_from(HOSTILE_DOCUMENTS), any_text)


def durations(value: object, name: str = "", depth: int = 0) -> Iterator[tuple[str, float | timedelta]]:
    """Every duration in a loaded policy: timedelta values and numbers named ``*_seconds`` or ``*_s``."""
    if depth > 12:
        return
    if isinstance(value, timedelta) or (
        isinstance(value, int | float) and not isinstance(value, bool) and name.endswith(("_seconds", "_s"))
    ):
        yield name, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from durations(getattr(value, field.name), field.name, depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from durations(item, f"{name}[{key}]", depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from durations(item, name, depth + 1)


def _check_durations(loaded: object) -> None:
    now = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
    for name, value in durations(loaded):
        delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
        assert isinstance(value, timedelta) or math.isfinite(value), (name, value)
        now + delta
        now - delta


def _line_of(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if line.startswith(key))


GRADER_FILE = LOADERS[0][3][0]


@given(st.integers(0, len(LOADERS) - 1), st.integers(0, 2), _edits, _other_documents)
@example(0, 0, [("value", _line_of(GRADER_FILE, "cooldown:"), "99999999999d")], None)
@example(0, 0, [("value", _line_of(GRADER_FILE, "cooldown:"), "9" * 400)], None)
@example(0, 0, [("value", _line_of(GRADER_FILE, "cooldown:"), ".inf")], None)
@example(1, 0, [("value", 3, "[posts]")], None)
@example(5, 0, [("value", 3, "99999999999d")], None)
@example(3, 0, [], _bomb())
def test_any_policy_text_loads_or_raises_the_loaders_error(
    which: int, base: int, edits: list[tuple[str, int, str]], other: str | None
) -> None:
    name, load, error_type, bases = LOADERS[which]
    document = edit(bases[base % len(bases)], edits) if other is None else other
    loaded, error = run(name, load, document, errors=(error_type,))
    if error is None:
        _check_durations(loaded)


@given(
    st.one_of(
        st.sampled_from(HOSTILE_DOCUMENTS),
        st.sampled_from(SCALARS),
        any_text,
        st.builds(edit, st.sampled_from([b for *_, bases in LOADERS for b in bases]), _edits),
    )
)
def test_any_text_is_plain_data_or_a_safe_yaml_error(text: str) -> None:
    run("safe_yaml.load_yaml", load_yaml, text, source="<property>", errors=(SafeYamlError,))
