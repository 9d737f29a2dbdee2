"""Manual tips (线索): the submitter kept encrypted at rest, the tip itself turned into a Post through the pipeline.

The person behind a tip (``TipSubmitter``: name, contact, organisation) is SENSITIVE. It is serialised and encrypted
with Fernet (AES-128-CBC + HMAC-SHA256, authenticated) before it reaches the database, and decrypted only for callers
holding the ``see_submitter`` role. Without a key the collector refuses tips altogether (FAILED_PRECONDITION): it
never stores a submitter in plain text. The submitter never enters the Post, Kafka, Elasticsearch, the audit log,
logs or traces; the audit log records that a tip was submitted, by whom (the caller, not the submitter) and which
post it became.

The key lives apart from the data: it comes from ``QF_COLLECTOR_TIP_KEY_FILE`` (a mounted secret) or the
environment, never from the database, which holds only ciphertext. Rotation (``MultiFernet``): the setting holds
several keys, newest first (one per line in the file, or comma-separated); the first encrypts, every one decrypts.
``TipCipher.rotate`` re-encrypts a token under the first key, so old tips can be moved off a retired key
(``python -m services.collector.rekey``) before it is removed.

Reading a submitter is itself an event: a caller holding ``see_submitter`` must say why (``GetTipRequest.reason``),
and every decryption appends ``tip.submitter.read`` to the hash-chained audit log with the caller and the reason,
before the submitter is returned (no audit record, no submitter).

Idempotency: a tip with an ``idempotency_key`` gets an id derived from the caller and the key, so its post id is the
same on a retry, and a resubmission returns the first result without producing again.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.callers import SEE_SUBMITTER, Caller
from services.collector.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.collector.pipeline import IngestReport, Outcome
from services.collector.ports import Rejected
from services.collector.registry import TIP_SOURCE_ID
from services.collector.sources.base import post_id

__all__ = [
    "StoredTip",
    "TipCipher",
    "TipDesk",
    "TipStore",
    "TipView",
    "generate_tip_key",
    "parse_tip_keys",
    "tip_id_for",
    "tip_message",
    "tip_post",
    "validate_tip",
]

_MAX_TITLE_CHARS: Final = 500
_MAX_TEXT_CHARS: Final = 20_000
_MAX_KEY_CHARS: Final = 200
_MAX_MEDIA: Final = 20
_MAX_REASON_CHARS: Final = 500
# The audit action of a submitter decryption.
READ_SUBMITTER: Final = "tip.submitter.read"


def generate_tip_key() -> str:
    """A new random key for ``QF_COLLECTOR_TIP_KEY`` (what `qingfeng up` writes into the state directory)."""
    return Fernet.generate_key().decode("ascii")


def parse_tip_keys(text: str) -> list[str]:
    """The keys of a key setting, newest first: one per line or comma-separated; blank lines and ``#`` comments
    are skipped."""
    keys: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        keys += [part.strip() for part in line.split(",") if part.strip()]
    return keys


class TipCipher:
    """Encrypts submitters with the first configured key and decrypts with any of them (``MultiFernet``).

    A malformed key fails at start, naming the variable and the key's position (never the key).
    """

    def __init__(self, keys: SecretStr | Sequence[SecretStr]) -> None:
        texts = [k.get_secret_value() for k in ([keys] if isinstance(keys, SecretStr) else keys)]
        values = [value for text in texts for value in parse_tip_keys(text)]
        if not values:
            raise ValueError("QF_COLLECTOR_TIP_KEY holds no key")
        fernets: list[Fernet] = []
        for index, value in enumerate(values, start=1):
            try:
                fernets.append(Fernet(value.encode("ascii")))
            except (ValueError, UnicodeEncodeError) as err:
                raise ValueError(
                    f"QF_COLLECTOR_TIP_KEY: key {index} of {len(values)} must be 32 url-safe base64-encoded bytes"
                    " (Fernet.generate_key())"
                ) from err
        self._fernet = MultiFernet(fernets)
        self._current = fernets[0]
        self.key_count = len(fernets)

    def encrypt(self, submitter: source_pb2.TipSubmitter) -> bytes:
        return self._fernet.encrypt(submitter.SerializeToString())

    def decrypt(self, token: bytes) -> source_pb2.TipSubmitter:
        """The submitter; ``ValueError`` when no configured key made the token (retired key, tampering)."""
        try:
            return source_pb2.TipSubmitter.FromString(self._fernet.decrypt(token))
        except InvalidToken as err:
            raise ValueError("tip submitter cannot be decrypted with the configured key") from err

    def is_current(self, token: bytes) -> bool:
        """Whether ``token`` is already encrypted under the first (current) key."""
        try:
            self._current.decrypt(token)
        except InvalidToken:
            return False
        return True

    def rotate(self, token: bytes) -> bytes:
        """``token`` re-encrypted under the first key (its original timestamp kept); ``ValueError`` if unreadable."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken as err:
            raise ValueError("tip submitter cannot be decrypted with the configured key") from err


@dataclass(frozen=True)
class StoredTip:
    """A tip as the registry keeps it: the post it became, and the submitter as ciphertext (None when anonymous)."""

    id: str
    principal: str
    agency: str | None
    idempotency_key: str | None
    origin: source_pb2.TipOrigin.ValueType
    post: post_pb2.Post
    duplicate_of: str
    submitter_ciphertext: bytes | None
    created_at: datetime


@dataclass(frozen=True)
class TipView:
    """A tip as one caller may see it: the submitter only for ``see_submitter``, else None."""

    tip: StoredTip
    submitter: source_pb2.TipSubmitter | None


class TipStore(Protocol):
    """The tip registry (SQL in production)."""

    async def find_tip(self, principal: str, idempotency_key: str) -> StoredTip | None: ...

    async def get_tip(self, tip_id: str) -> StoredTip | None: ...

    async def save_tip(self, tip: StoredTip, caller: Caller) -> None:
        """Store the tip and append ``tip.submit`` to the audit log in the same transaction."""
        ...

    async def audit(self, caller: Caller, action: str, target: str, details: Mapping[str, Any]) -> None:
        """Append one record to the hash-chained audit log (durable when this returns)."""
        ...


class TipIngest(Protocol):
    async def ingest(self, items: Sequence[post_pb2.Post | Rejected]) -> IngestReport: ...


def validate_tip(request: source_pb2.SubmitTipRequest) -> None:
    """``InvalidArgument`` naming every bad field of a tip."""
    out: list[FieldViolation] = []
    if not request.text.strip():
        out.append(FieldViolation("text", "required"))
    elif len(request.text) > _MAX_TEXT_CHARS:
        out.append(FieldViolation("text", f"at most {_MAX_TEXT_CHARS} characters"))
    if len(request.title) > _MAX_TITLE_CHARS:
        out.append(FieldViolation("title", f"at most {_MAX_TITLE_CHARS} characters"))
    if request.origin == source_pb2.TIP_ORIGIN_UNSPECIFIED:
        out.append(FieldViolation("origin", "required: who submits the tip"))
    if request.url and not request.url.startswith(("http://", "https://")):
        out.append(FieldViolation("url", "an http:// or https:// URL"))
    if len(request.media_urls) > _MAX_MEDIA:
        out.append(FieldViolation("media_urls", f"at most {_MAX_MEDIA}"))
    for i, region in enumerate(request.regions):
        if not (len(region.code) == 6 and region.code.isdigit()):
            out.append(FieldViolation(f"regions[{i}].code", "a six-digit GB/T 2260 code"))
    if len(request.idempotency_key) > _MAX_KEY_CHARS:
        out.append(FieldViolation("idempotency_key", f"at most {_MAX_KEY_CHARS} characters"))
    if out:
        raise InvalidArgument(out)


def tip_id_for(caller: Caller, idempotency_key: str) -> str:
    """Derived from caller and key when there is a key (so retries land on the same post), else random."""
    if idempotency_key:
        digest = hashlib.sha256(f"{caller.principal}\0{idempotency_key}".encode()).hexdigest()
        return f"tip-{digest[:24]}"
    return f"tip-{uuid.uuid4().hex[:24]}"


def tip_post(request: source_pb2.SubmitTipRequest, tip_id: str, now: datetime) -> post_pb2.Post:
    """The Post a tip becomes. Nothing of the submitter goes into it."""
    post = post_pb2.Post(
        id=post_id(common_pb2.SOURCE_KIND_MANUAL_TIP, TIP_SOURCE_ID, tip_id),
        source_id=TIP_SOURCE_ID,
        source_kind=common_pb2.SOURCE_KIND_MANUAL_TIP,
        native_id=tip_id,
        url=request.url,
        platform="tip",
        title=request.title.strip(),
        text=request.text.strip(),
        media_urls=list(request.media_urls),
    )
    post.created_at.FromDatetime(now)
    post.collected_at.FromDatetime(now)
    post.enrichment.regions.extend(common_pb2.Region(code=r.code, name=r.name) for r in request.regions)
    return post


class TipDesk:
    """SubmitTip and the submitter's protection: validates, produces the post, stores the encrypted submitter."""

    def __init__(
        self,
        store: TipStore,
        pipeline: TipIngest,
        cipher: TipCipher | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._pipeline = pipeline
        self._cipher = cipher
        self._clock = clock

    async def submit(self, request: source_pb2.SubmitTipRequest, caller: Caller) -> source_pb2.SubmitTipResponse:
        if self._cipher is None:
            raise FailedPrecondition("tips are disabled: no QF_COLLECTOR_TIP_KEY is configured to protect submitters")
        validate_tip(request)
        key = request.idempotency_key
        if key:
            earlier = await self._store.find_tip(caller.principal, key)
            if earlier is not None:
                return source_pb2.SubmitTipResponse(
                    post=earlier.post, duplicate_of=earlier.duplicate_of, tip_id=earlier.id
                )
        now = self._clock()
        tip_id = tip_id_for(caller, key)
        # Encrypt before anything is produced: a bad key must not leave a post without its tip record.
        has_submitter = request.HasField("submitter") and request.submitter.ByteSize() > 0
        ciphertext = self._cipher.encrypt(request.submitter) if has_submitter else None
        report = await self._pipeline.ingest([tip_post(request, tip_id, now)])
        result = report.results[0]
        if result.outcome is Outcome.REJECTED or result.post is None:
            why = result.rejected.message if result.rejected is not None else "rejected"
            raise InvalidArgument.of("text", why)
        post = result.post
        duplicate_of = result.duplicate_of
        tip = StoredTip(
            id=tip_id,
            principal=caller.principal,
            agency=caller.agency,
            idempotency_key=key or None,
            origin=request.origin,
            post=post,
            duplicate_of=duplicate_of,
            submitter_ciphertext=ciphertext,
            created_at=now,
        )
        await self._store.save_tip(tip, caller)
        return source_pb2.SubmitTipResponse(post=post, duplicate_of=duplicate_of, tip_id=tip_id)

    async def view(self, tip_id: str, caller: Caller, reason: str = "") -> TipView | None:
        """The tip with its submitter decrypted only when ``caller`` holds ``see_submitter``; None if unknown.

        Such a caller must give ``reason``; each decryption is audited (caller, reason) before it is returned.
        """
        may_see = caller.has_role(SEE_SUBMITTER)
        why = reason.strip()
        if may_see and not why:
            raise InvalidArgument.of(
                "reason", "required from callers holding see_submitter: why the submitter is needed (it is audited)"
            )
        if len(why) > _MAX_REASON_CHARS:
            raise InvalidArgument.of("reason", f"at most {_MAX_REASON_CHARS} characters")
        tip = await self._store.get_tip(tip_id)
        if tip is None:
            return None
        submitter = None
        if may_see and tip.submitter_ciphertext is not None:
            if self._cipher is None:
                raise FailedPrecondition("no QF_COLLECTOR_TIP_KEY is configured: submitters cannot be decrypted")
            try:
                submitter = self._cipher.decrypt(tip.submitter_ciphertext)
            except ValueError as err:
                raise FailedPrecondition(f"tip {tip.id}: {err} (was its key retired before re-encryption?)") from err
            # Durable before the submitter leaves: if the audit log cannot take the record, the caller gets an error.
            details = {"tip_id": tip.id, "post_id": tip.post.id, "reason": why, "roles": sorted(caller.roles)}
            await self._store.audit(caller, READ_SUBMITTER, tip.id, details)
        return TipView(tip, submitter)


def tip_message(view: TipView) -> source_pb2.Tip:
    """The ``Tip`` a caller receives: the submitter is set only when ``view`` carries it (``see_submitter``)."""
    tip = view.tip
    message = source_pb2.Tip(
        id=tip.id,
        post=tip.post,
        origin=tip.origin,
        submitted_by=tip.principal,
        duplicate_of=tip.duplicate_of,
        has_submitter=tip.submitter_ciphertext is not None,
    )
    message.submitted_at.FromDatetime(tip.created_at)
    if view.submitter is not None:
        message.submitter.CopyFrom(view.submitter)
    return message
