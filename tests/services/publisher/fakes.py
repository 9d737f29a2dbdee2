"""In-memory channel fakes for the publisher's own tests (the real adapters are tested in ``channels/``).

``FakePlatform`` is the remote side: it outlives any adapter or worker, so a test can "restart" the publisher and
see what really landed. ``FakeChannel`` speaks the ``ChannelAdapter`` port to it and can be told to fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.publisher.ports import ChannelError, Delivered, Delivery


class Killed(BaseException):
    """Stands for the process dying (kill -9): not an Exception, so nothing in the worker handles it."""


@dataclass
class FakePlatform:
    posts: dict[str, Delivery] = field(default_factory=dict)
    retracted: list[str] = field(default_factory=list)
    corrections: list[tuple[str, str]] = field(default_factory=list)

    def count(self, publication_id: str) -> int:
        return sum(1 for d in self.posts.values() if d.publication_id == publication_id)


@dataclass
class FakeChannel:
    platform: FakePlatform
    kind: str = "weibo"
    # Raised by deliver(), one per call, before anything lands; empty means deliver works.
    failures: list[BaseException] = field(default_factory=list)
    # Raised after the post landed (the channel accepted it, then the worker "died" or the reply was lost).
    after_accept: list[BaseException] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    async def deliver(self, delivery: Delivery) -> Delivered:
        self.calls.append(f"deliver:{delivery.publication_id}")
        if self.failures:
            raise self.failures.pop(0)
        external_id = str(len(self.platform.posts) + 1)
        self.platform.posts[external_id] = delivery
        if self.after_accept:
            raise self.after_accept.pop(0)
        return Delivered(external_id, f"https://channel.test/{external_id}")

    async def find(self, publication_id: str) -> Delivered | None:
        self.calls.append(f"find:{publication_id}")
        for external_id, d in self.platform.posts.items():
            if d.publication_id == publication_id:
                return Delivered(external_id, f"https://channel.test/{external_id}")
        return None

    async def retract(self, external_id: str) -> None:
        self.calls.append(f"retract:{external_id}")
        self.platform.retracted.append(external_id)

    async def correct(self, external_id: str, text: str) -> Delivered:
        self.calls.append(f"correct:{external_id}")
        self.platform.corrections.append((external_id, text))
        return Delivered(external_id, f"https://channel.test/{external_id}")


@dataclass
class Clock:
    now: datetime = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def rate_limited(retry_after_s: float | None = None) -> ChannelError:
    from services.publisher.ports import ChannelErrorKind

    return ChannelError(ChannelErrorKind.RATE_LIMITED, "429 too many requests", retry_after_s)


def channel_error(kind: str, message: str = "") -> ChannelError:
    from services.publisher.ports import ChannelErrorKind

    return ChannelError(ChannelErrorKind[kind], message or kind.lower())


IdFactory = Callable[[], str]
