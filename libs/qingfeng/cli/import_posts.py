"""`qingfeng import FILE`: stream a JSON Lines file of posts into the running suite through the collector's ImportPosts.

By default the lines go through the gateway (``127.0.0.1:50051``) with the bearer token of a local identity
(``<state dir>/tokens/analyst``, written by `qingfeng up`); ``--collector HOST:PORT`` talks to the collector directly
(operators, inside the deployment's network), signing each chunk's call with the ``ops-import`` identity's key
(``<state dir>/pki/keys/ops-import.pem``, or ``--key-file``): the collector believes no unsigned caller.
The file is sent as several ImportPosts streams of ``--chunk-lines``
lines, so progress is visible, a failure loses at most one chunk, and ``--skip N`` resumes after the last chunk that
went through (re-sent posts are recognised by id and counted as duplicates, never indexed twice). Within a stream
the lines travel in ``jsonl_lines`` batches of at most ``--batch-lines`` lines and ``BATCH_BYTES`` bytes per
message: one message per line cost more CPU in gRPC's streaming (client and collector) than the line's own work.
The collector and the gateway treat a batch as its lines one after the other (numbering, limits).

When the collector is overloaded (RESOURCE_EXHAUSTED: its produce budget is full) or Kafka is unreachable
(UNAVAILABLE) its answer carries a ``google.rpc.RetryInfo``; the client then waits the advised delay and sends the
same chunk again, saying so on the progress line, for at most ``--max-wait`` seconds per chunk. Nothing is lost and
nothing is imported twice: the chunk's posts that went through before the refusal come back as duplicates.

Progress (lines sent, rate) goes to stderr; the final summary (accepted, duplicate, rejected and the first
rejections with their line numbers) to stdout. The exit code is 0 when every chunk was imported, 1 when an RPC failed
(or the token cannot be read), 2 for a usage error (no such file, bad option).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import grpc

from qingfeng.cli._console import CliError
from qingfeng.cli.paths import state_dir
from qingfeng.rpc.errors import retry_delay_of
from qingfeng.rpc.tls import sync_channel
from qingfeng.settings import ClientTlsSettings
from qingfeng.v1 import post_pb2, source_pb2, source_pb2_grpc

__all__ = ["ImportTotals", "add_arguments", "import_file", "run"]

DEFAULT_GATEWAY: Final = "127.0.0.1:50051"
DEFAULT_IDENTITY: Final = "analyst"
DEFAULT_CHUNK_LINES: Final = 5_000
DEFAULT_BATCH_LINES: Final = 200
# The most lines one message may carry (JsonlLines.lines' max_items in source.proto).
MAX_BATCH_LINES: Final = 1_000
# A batch's lines (UTF-8) stay under this, well below the gateway's default 512 KiB per message; a longer single
# line goes alone, as it would have as a jsonl_line.
BATCH_BYTES: Final = 384 * 1024
DEFAULT_MAX_WAIT_S: Final = 600.0
_SHOWN_REJECTIONS: Final = 10
_PROGRESS_EVERY_S: Final = 0.2
_MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
_IMPORT_METHOD: Final = "/qingfeng.v1.CollectorService/ImportPosts"
# `qingfeng.cli.pki.IMPORT_ISSUER` (tested equal): the PKI module and the credentials it needs (JWT, YAML, pydantic,
# X.509) are imported only by the paths that use them, not at every start of this short-lived client.
IMPORT_ISSUER: Final = "ops-import"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qingfeng import`."""
    parser.add_argument("file", type=Path, metavar="FILE", help="JSON Lines file of posts (the ../shared/data format)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--gateway", metavar="HOST:PORT", default=None, help=f"gateway address (default {DEFAULT_GATEWAY})"
    )
    target.add_argument(
        "--collector", metavar="HOST:PORT", default=None, help="call the collector directly, without the gateway"
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help=f"bearer token for the gateway (default <state dir>/tokens/{DEFAULT_IDENTITY})",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help=f"with --collector: the {IMPORT_ISSUER} signing key (default <state dir>/pki/keys/{IMPORT_ISSUER}.pem)",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        help="CA the server's TLS certificate chains to (default <state dir>/pki/ca.pem, the local suite's CA)",
    )
    parser.add_argument("--plaintext", action="store_true", help="connect without TLS (a plaintext server only)")
    parser.add_argument("--source-id", default="", help="source the posts are attributed to (default: import)")
    parser.add_argument("--chunk-lines", type=int, default=DEFAULT_CHUNK_LINES, help="lines per ImportPosts stream")
    parser.add_argument(
        "--batch-lines",
        type=int,
        default=DEFAULT_BATCH_LINES,
        help=f"lines per ImportPosts message, 1-{MAX_BATCH_LINES} (default {DEFAULT_BATCH_LINES})",
    )
    parser.add_argument("--skip", type=int, default=0, metavar="N", help="skip the first N lines (resume)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="send at most N lines")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per chunk (default 600)")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=DEFAULT_MAX_WAIT_S,
        help="seconds a chunk may wait on a busy collector's retry advice before the import fails (default 600)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


@dataclass
class ImportTotals:
    """What the collector answered, summed over the chunks, with rejections numbered by file line."""

    lines_sent: int = 0
    # Chunks sent again on the collector's retry advice (RESOURCE_EXHAUSTED / UNAVAILABLE with RetryInfo).
    advised_retries: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejections: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, message)

    def add(self, summary: source_pb2.ImportSummary, line_numbers: Sequence[int]) -> None:
        self.accepted += summary.accepted
        self.duplicate += summary.duplicate
        self.rejected += summary.rejected
        for rejection in summary.rejections:
            index = int(rejection.index) - 1
            line = line_numbers[index] if 0 <= index < len(line_numbers) else -1
            reason = post_pb2.DeadLetterReason.Name(rejection.reason).removeprefix("DEAD_LETTER_REASON_")
            self.rejections.append((line, reason, rejection.message))


# A chunk is sent again after these (a service restarting, a dropped stream), at most _ATTEMPTS times in all.
_RETRYABLE: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL})
# With a RetryInfo (backpressure) these are retried after the advised delay for as long as --max-wait allows.
_ADVISED: Final = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})
_ATTEMPTS: Final = 3
_RETRY_BACKOFF_S: Final = 1.0


class _Progress:
    """One self-overwriting status line on stderr: lines sent, percent of the file, rate."""

    def __init__(self, total: int, out: IO[str] | None) -> None:
        self._total = total
        self._out = out
        self._started = time.monotonic()
        self._shown = 0.0
        self.sent = 0

    def advance(self, force: bool = False, lines: int = 1) -> None:
        self.sent += 0 if force else lines
        now = time.monotonic()
        if self._out is None or (not force and now - self._shown < _PROGRESS_EVERY_S):
            return
        self._shown = now
        elapsed = max(now - self._started, 1e-6)
        share = self.sent / self._total if self._total else 1.0
        width = 30
        bar = "#" * int(share * width)
        self._out.write(
            f"\r[import] [{bar:<{width}}] {self.sent:,}/{self._total:,} lines ({share:6.1%}) "
            f"{self.sent / elapsed:,.0f} lines/s"
        )
        self._out.flush()

    def note(self, message: str) -> None:
        """A line of its own (a retry), after which the status line goes on."""
        if self._out is not None:
            self._out.write(f"\r[import] {message}\n")
            self._out.flush()

    def done(self) -> None:
        if self._out is not None:
            self.advance(force=True)
            self._out.write("\n")
            self._out.flush()


# Bytes read from the file at a time; the lines of a block are split, checked and measured in a few C calls each.
_READ_BYTES: Final = 1 << 20
# Whether a line starting with this byte is surely not blank: ASCII that ``str.isspace`` does not call whitespace
# (\x1c-\x1f are whitespace to str, not to bytes). Lines starting otherwise (rare) are decoded to be checked.
_SURELY_NOT_BLANK: Final = tuple(b < 0x80 and not chr(b).isspace() for b in range(256))


def _raw_lines(path: Path, skip: int, limit: int | None, *, validate: bool = True) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line's bytes without its line break, whether the file's block holding it is valid UTF-8; False
    without ``validate``) of the non-blank lines after the first ``skip`` lines, at most ``limit``.

    Lines end at ``\n``, ``\r`` or ``\r\n`` (``bytes.splitlines``: what a text file opened with ``newline=""``
    splits on, and neither byte occurs inside a UTF-8 character), and a line is blank when its text, undecodable bytes
    as surrogate escapes, is all whitespace: the lines ``open(path, encoding="utf-8", errors="surrogateescape",
    newline="")`` gives, numbered alike (tests/services/collector/unit/test_import_client_lines.py). Read as bytes, a
    line of valid UTF-8 is never decoded here: the validity of a block's complete lines is one decode, and the lines
    go into the request as bytes, which protobuf stores as they are.
    """
    number = taken = 0
    surely = _SURELY_NOT_BLANK
    with path.open("rb") as handle:
        pending = b""
        while True:
            block = handle.read(_READ_BYTES)
            data = pending + block if pending else block
            if not data:
                return
            lines = data.splitlines()
            if block and not data.endswith(b"\n"):
                # The last line may go on in the next block; a trailing \r may be the first half of a \r\n.
                pending = lines.pop() + (b"\r" if data.endswith(b"\r") else b"") if lines else data
                complete = data[: len(data) - len(pending)]
            else:
                pending, complete = b"", data
            valid = validate and _valid(complete)
            for raw in lines:
                number += 1
                if number <= skip:
                    continue
                if limit is not None and taken >= limit:
                    return
                if not raw or (not surely[raw[0]] and _blank(raw)):
                    continue
                taken += 1
                yield number, raw, valid
            if not block:
                return


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _blank(raw: bytes) -> bool:
    """Whether the line's text is all whitespace (undecodable bytes are not whitespace, whichever way decoded)."""
    return raw.decode("utf-8", "replace").isspace()


def _payload(raw: bytes, valid: bool) -> tuple[bytes | str, int]:
    """What a line is sent as, and its UTF-8 size: its bytes when they are valid UTF-8, else its text with undecodable
    bytes as U+FFFD (the collector dead-letters what it cannot parse)."""
    if valid or _valid(raw):
        return raw, len(raw)
    text = raw.decode("utf-8", "replace")
    return text, len(text.encode("utf-8"))


def _numbered_lines(path: Path, skip: int, limit: int | None) -> Iterator[tuple[int, str]]:
    """(line number, line as text) of the non-blank lines after the first ``skip`` lines, at most ``limit``."""
    for number, raw, _ in _raw_lines(path, skip, limit, validate=False):
        yield number, raw.decode("utf-8", "replace")


def _count_lines(path: Path, skip: int, limit: int | None) -> int:
    """How many lines ``_numbered_lines`` yields, without making them."""
    return sum(1 for _ in _raw_lines(path, skip, limit, validate=False))


def _batches(lines: Sequence[tuple[int, bytes | str, int]], batch_lines: int) -> Iterator[list[bytes | str]]:
    """The chunk's lines (number, payload, UTF-8 size) in order, in groups of at most ``batch_lines`` lines and
    ``BATCH_BYTES`` bytes."""
    batch: list[bytes | str] = []
    size = 0
    for _, line, length in lines:
        if batch and (len(batch) >= batch_lines or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += length
    if batch:
        yield batch


def import_file(
    stub: source_pb2_grpc.CollectorServiceStub,
    path: Path,
    *,
    metadata: Sequence[tuple[str, str]] | Callable[[], Sequence[tuple[str, str]]],
    source_id: str = "",
    chunk_lines: int = DEFAULT_CHUNK_LINES,
    batch_lines: int = DEFAULT_BATCH_LINES,
    skip: int = 0,
    limit: int | None = None,
    timeout_s: float = 600.0,
    progress: IO[str] | None = None,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> ImportTotals:
    """Send the file in chunks and sum the answers. Raises ``CliError`` (with the line to resume from) on a failure."""
    totals = ImportTotals()
    # The total only shows on the progress line: without one the file is read once.
    bar = _Progress(_count_lines(path, skip, limit) if progress is not None else 0, progress)
    lines = ((number, *_payload(raw, valid)) for number, raw, valid in _raw_lines(path, skip, limit))
    resume_from = skip
    while True:
        chunk = [item for _, item in zip(range(chunk_lines), lines, strict=False)]
        if not chunk:
            break
        numbers = [item[0] for item in chunk]

        def requests(batch: list[tuple[int, bytes | str, int]] = chunk) -> Iterator[source_pb2.ImportPostsRequest]:
            # A stream is re-sent whole on a refusal, so a batch never straddles two attempts: the collector
            # numbers every line of the stream from 1, as ``numbers`` does.
            for lines in _batches(batch, batch_lines):
                bar.advance(lines=len(lines))
                request = source_pb2.ImportPostsRequest(source_id=source_id)
                # Built in place (no JsonlLines copied into the request); protobuf takes a string as valid UTF-8
                # bytes too, stored as they are (the stubs only name str).
                request.jsonl_lines.lines.extend(lines)  # type: ignore[arg-type]
                yield request

        attempt, sent_before, waited = 0, bar.sent, 0.0
        while True:
            attempt += 1
            try:
                # A signed credential lives seconds: each attempt gets a fresh one.
                call_metadata = metadata() if callable(metadata) else metadata
                response = stub.ImportPosts(requests(), metadata=list(call_metadata), timeout=timeout_s)
                break
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
                details = err.details() if hasattr(err, "details") else str(err)
                advice = retry_delay_of(err) if code in _ADVISED else None
                if advice is not None and waited + advice <= max_wait_s:
                    # Backpressure: the collector said when to come back; the same chunk goes again then.
                    attempt, waited = 0, waited + advice
                    totals.advised_retries += 1
                    bar.sent = sent_before
                    bar.note(
                        f"collector busy ({code.name}: {details}); resending lines {numbers[0]}-{numbers[-1]} "
                        f"in {advice:g} s"
                    )
                    time.sleep(advice)
                    continue
                if code in _RETRYABLE and attempt < _ATTEMPTS:
                    # Post ids are stable, so re-sending a chunk is safe: what the failed attempt already
                    # accepted comes back as duplicates, nothing is produced twice.
                    bar.sent = sent_before
                    time.sleep(_RETRY_BACKOFF_S * attempt)
                    continue
                bar.done()
                raise CliError(
                    f"ImportPosts failed with {code.name}: {details}\n"
                    f"  lines up to {resume_from} were imported; resume with --skip {resume_from}"
                ) from err
        totals.add(response.summary, numbers)
        totals.lines_sent += len(chunk)
        resume_from = numbers[-1]
    bar.done()
    return totals


def _signed(key_file: Path) -> Callable[[], Sequence[tuple[str, str]]]:
    """Fresh ``ops-import`` credentials for direct calls to the collector, which audits them under that name."""
    from qingfeng.rpc.credentials import TrustConfigError, load_signer

    try:
        signer = load_signer(IMPORT_ISSUER, key_file)
    except TrustConfigError as err:
        raise CliError(f"{err} (run `qingfeng up` first to provision it, or pass --key-file)") from err
    return lambda: signer.metadata(_IMPORT_METHOD)


def _metadata(args: argparse.Namespace) -> Sequence[tuple[str, str]] | Callable[[], Sequence[tuple[str, str]]]:
    if args.collector:
        from qingfeng.cli.pki import key_file

        return _signed(args.key_file or key_file(state_dir(), IMPORT_ISSUER))
    token_file: Path = args.token_file or state_dir() / "tokens" / DEFAULT_IDENTITY
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise CliError(
            f"cannot read the gateway token {token_file}: {err.strerror} (run `qingfeng up` first, or pass "
            "--token-file, or --collector HOST:PORT to bypass the gateway)"
        ) from err
    if not token:
        raise CliError(f"the gateway token file {token_file} is empty")
    return [("authorization", f"Bearer {token}")]


def _print_summary(totals: ImportTotals, out: IO[str]) -> None:
    print(
        f"imported {totals.lines_sent:,} lines: accepted {totals.accepted:,}, duplicate {totals.duplicate:,}, "
        f"rejected {totals.rejected:,}"
        + (f" ({totals.advised_retries} chunks re-sent on the collector's advice)" if totals.advised_retries else ""),
        file=out,
    )
    for line, reason, message in totals.rejections[:_SHOWN_REJECTIONS]:
        print(f"  line {line}: {reason}: {message}", file=out)
    hidden = totals.rejected - min(len(totals.rejections), _SHOWN_REJECTIONS)
    if hidden > 0:
        print(f"  … and {hidden:,} more rejections (all are on the dead-letter topic with their reasons)", file=out)


def _local_ca() -> Path:
    from qingfeng.cli.pki import ca_file

    return ca_file(state_dir())


def run(args: argparse.Namespace) -> int:
    """Import the file; returns the exit code."""
    path: Path = args.file
    # Usage errors exit 2, like argparse's own; a failed import exits 1.
    if not path.is_file():
        raise CliError(f"no such file: {path}", exit_code=2)
    if args.chunk_lines < 1 or args.skip < 0 or (args.limit is not None and args.limit < 0):
        raise CliError("--chunk-lines must be positive, --skip and --limit not negative", exit_code=2)
    if not 1 <= args.batch_lines <= MAX_BATCH_LINES:
        raise CliError(f"--batch-lines must be between 1 and {MAX_BATCH_LINES}", exit_code=2)
    metadata = _metadata(args)
    address = args.collector or args.gateway or DEFAULT_GATEWAY
    options = [("grpc.max_send_message_length", _MAX_MESSAGE_BYTES)]
    tls = ClientTlsSettings(ca_file=None if args.plaintext else args.ca_file or _local_ca(), plaintext=args.plaintext)
    with sync_channel(address, tls, options=options) as channel:
        stub = source_pb2_grpc.CollectorServiceStub(channel)
        totals = import_file(
            stub,
            path,
            metadata=metadata,
            source_id=args.source_id,
            chunk_lines=args.chunk_lines,
            batch_lines=args.batch_lines,
            skip=args.skip,
            limit=args.limit,
            timeout_s=args.timeout,
            progress=None if args.quiet else sys.stderr,
            max_wait_s=args.max_wait,
        )
    _print_summary(totals, sys.stdout)
    return 0
