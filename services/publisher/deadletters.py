"""``python -m services.publisher.deadletters``: the operators' view of dead-lettered publications, and replay.

    python -m services.publisher.deadletters list                       # FAILED publications, newest first
    python -m services.publisher.deadletters replay PUBLICATION_ID --operator NAME

Reads the publisher's database from ``QF_PUBLISHER_DATABASE__URL`` (the same settings as the service). A replay
puts the publication back to PENDING with a fresh retry budget, audited under the operator's name; the running
worker delivers it, asking the channel first whether an earlier attempt landed. Over gRPC, ``PublishDraft`` on a
FAILED or PARTIALLY_FAILED draft replays all of its dead letters. Every dead letter was also sent to
``qingfeng.publications-deadletter.v1`` when it happened.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from qingfeng.storage import create_engine

from services.publisher.adapters.policy_yaml import load_policies
from services.publisher.adapters.sql import SqlStore
from services.publisher.application import Publisher
from services.publisher.core.model import Actor, PublicationStatus
from services.publisher.errors import PublisherError
from services.publisher.settings import PublisherSettings

__all__ = ["main"]


async def _run(args: argparse.Namespace, settings: PublisherSettings) -> int:
    engine = create_engine(settings.database, application_name="qingfeng-publisher-deadletters")
    try:
        p = settings.policies
        publisher = Publisher(SqlStore(engine), load_policies(p.templates_file, p.signoff_file, p.channels_file), {})
        if args.command == "list":
            rows = await publisher.list_publications(status=PublicationStatus.FAILED.value, limit=args.limit, offset=0)
            for pub, draft in rows:
                print(f"{pub.id}\t{pub.channel_id}\tcase={pub.case_id}\tdraft={draft.id}\tattempts={pub.attempts}\t"
                      f"{pub.last_error}")  # fmt: skip
            print(f"{len(rows)} dead letter(s)", file=sys.stderr)
            return 0
        replayed = await publisher.replay(Actor(args.operator, "channel_operator"), args.publication_id)
        print(f"{replayed.id}\t{replayed.status.value}\t(the worker delivers it next)")
        return 0
    except PublisherError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.publisher.deadletters")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="dead-lettered (FAILED) publications")
    listing.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="send one dead-lettered publication again")
    replay.add_argument("publication_id")
    replay.add_argument("--operator", required=True, help="who replays it (audited)")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args, PublisherSettings()))


if __name__ == "__main__":
    raise SystemExit(main())
