"""Move stored tip submitters onto the current tip key, so a retired key can be removed from the setting.

Rotation order: put the new key FIRST in the key setting (old ones after it) and restart; new tips use it at once.
Then run ``python -m services.collector.rekey``: every submitter still under an older key is re-encrypted under the
first one (``MultiFernet.rotate``; the plaintext never leaves this process). When it reports none left, drop the
old key from the setting. Each run appends one ``tip.key.rotate`` record (counts only) to the audit log.

Rows are updated only when their ciphertext is still the one read (compare-and-set), so a run can overlap a
running collector. A token no configured key opens is counted and left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from qingfeng.storage import append_audit
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.collector.adapters.sql import tips_table
from services.collector.tips import TipCipher

__all__ = ["REKEY_ACTION", "RekeyReport", "reencrypt_tips"]

REKEY_ACTION = "tip.key.rotate"
_t = tips_table.c


@dataclass(frozen=True)
class RekeyReport:
    """What a run found: submitters seen, re-encrypted, already current, and unreadable with every key."""

    seen: int = 0
    rotated: int = 0
    current: int = 0
    unreadable: int = 0


async def reencrypt_tips(
    sessions: async_sessionmaker[AsyncSession], cipher: TipCipher, *, actor: str, page_size: int = 200
) -> RekeyReport:
    """Re-encrypt every stored submitter that is not under ``cipher``'s first key; one audit record per run."""
    seen = rotated = current = unreadable = 0
    last_id = ""
    while True:
        async with sessions() as session, session.begin():
            query = (
                select(_t.id, _t.submitter_ciphertext)
                .where(_t.submitter_ciphertext.is_not(None), _t.id > last_id)
                .order_by(_t.id)
                .limit(page_size)
            )
            rows = (await session.execute(query)).all()
            for tip_id, token in rows:
                seen += 1
                old = bytes(token)
                if cipher.is_current(old):
                    current += 1
                    continue
                try:
                    new = cipher.rotate(old)
                except ValueError:
                    unreadable += 1
                    continue
                changed = await session.execute(
                    update(tips_table)
                    .where(_t.id == tip_id, _t.submitter_ciphertext == old)
                    .values(submitter_ciphertext=new)
                )
                rotated += int(getattr(changed, "rowcount", 0) or 0)
        if len(rows) < page_size:
            break
        last_id = rows[-1][0]
    report = RekeyReport(seen, rotated, current, unreadable)
    async with sessions() as session, session.begin():
        details = {"seen": seen, "rotated": rotated, "current": current, "unreadable": unreadable}
        await append_audit(session, actor=actor, agency=None, action=REKEY_ACTION, target="tips", details=details)
    return report
