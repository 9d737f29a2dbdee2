"""The fast trace-context reading of consumed records gives what the generic propagator gives, for any headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from qingfeng.kafka.records import headers_of, trace_context_of
from qingfeng.telemetry import extract_context

_VALID = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _span_context(ctx: Context) -> trace.SpanContext:
    return trace.get_current_span(ctx).get_span_context()


def _same(headers: list[tuple[str, bytes]]) -> None:
    fast, slow = _span_context(trace_context_of(headers)), _span_context(extract_context(headers))
    assert fast == slow
    assert (fast.trace_id, fast.span_id, fast.trace_flags, fast.is_remote, fast.trace_state) == (
        slow.trace_id,
        slow.span_id,
        slow.trace_flags,
        slow.is_remote,
        slow.trace_state,
    )


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("qf-event-type", b"post.collected")],
        [("traceparent", _VALID)],
        [("traceparent", _VALID.replace(b"-01", b"-00")), ("content-type", b"application/x-protobuf")],
        [("traceparent", _VALID), ("tracestate", b"vendor=abc")],
        [("traceparent", b"00-" + b"0" * 32 + b"-b7ad6b7169203331-01")],  # zero trace id: no parent
        [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-" + b"0" * 16 + b"-01")],
        [("traceparent", b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
        [("traceparent", b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")],
        [("traceparent", b"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01")],
        [("traceparent", _VALID + b"-more")],
        [("traceparent", b"")],
        [("traceparent", b"\xff\xfe")],
        [("traceparent", b"00-1-2-01"), ("traceparent", _VALID)],  # the last one counts, as in a carrier dict
    ],
)
def test_fast_reading_matches_the_propagator(headers: list[tuple[str, bytes]]) -> None:
    _same(headers)


def test_a_valid_traceparent_is_read_as_a_remote_parent() -> None:
    ctx = _span_context(trace_context_of([("traceparent", _VALID)]))
    assert ctx.is_valid and ctx.is_remote
    assert ctx.trace_id == 0x0AF7651916CD43DD8448EB211C80319C and ctx.span_id == 0xB7AD6B7169203331


_HEX = "0123456789abcdefABCDEF-"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["traceparent", "tracestate", "other"]),
            st.one_of(
                st.binary(max_size=70),
                st.text(alphabet=_HEX, min_size=50, max_size=60).map(str.encode),
                st.builds(
                    lambda v, t, s, f: f"{v}-{t}-{s}-{f}".encode(),
                    st.sampled_from(["00", "01", "ff", "0g"]),
                    st.text(alphabet="0123456789abcdef", min_size=31, max_size=33),
                    st.text(alphabet="0123456789abcdef", min_size=15, max_size=17),
                    st.text(alphabet="0123456789abcdef", min_size=2, max_size=2),
                ),
            ),
        ),
        max_size=3,
    )
)
def test_any_headers_read_as_the_propagator_reads_them(headers: list[tuple[str, bytes]]) -> None:
    _same(headers)


def test_headers_are_kept_as_they_are_or_normalised() -> None:
    pairs = [("traceparent", _VALID), ("k", b"v")]
    assert headers_of(pairs) == tuple(pairs)
    assert headers_of(None) == ()
    assert headers_of([("k", None), ("j", bytearray(b"x"))]) == (("k", b""), ("j", b"x"))
