"""`python -m services.collector.rekey`: re-encrypt stored tip submitters under the first configured tip key.

Reads the collector's own settings (``QF_COLLECTOR_DATABASE__URL``, ``QF_COLLECTOR_TIP_KEY_FILE`` …), needs neither
Kafka nor the gRPC API, and prints what it did as one JSON line. See ``adapters/tip_rekey.py`` for the rotation steps.
Exit status 1 when some submitter could be opened with none of the configured keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from qingfeng.storage import create_engine, session_factory

from services.collector.adapters.tip_rekey import reencrypt_tips
from services.collector.settings import CollectorSettings
from services.collector.tips import TipCipher

__all__ = ["main", "rekey"]

ACTOR = "ops-rekey"


async def rekey(settings: CollectorSettings) -> dict[str, int]:
    key = settings.resolved_tip_key()
    if key is None:
        raise SystemExit("no QF_COLLECTOR_TIP_KEY or QF_COLLECTOR_TIP_KEY_FILE: nothing to re-encrypt with")
    cipher = TipCipher(key)
    engine = create_engine(settings.database, application_name="qingfeng-collector-rekey")
    try:
        report = await reencrypt_tips(session_factory(engine), cipher, actor=ACTOR)
    finally:
        await engine.dispose()
    return {"keys": cipher.key_count, **dataclasses.asdict(report)}


def main() -> None:
    result = asyncio.run(rekey(CollectorSettings()))
    print(json.dumps(result))
    sys.exit(1 if result["unreadable"] else 0)


if __name__ == "__main__":
    main()
