"""Publication times as sources write them, to timezone-aware datetimes.

Handles RFC 822 (RSS), ISO 8601 (Atom, Mastodon, JSONL), Weibo's ``Tue May 31 17:46:55 +0800 2011``, Unix epochs,
and what Chinese forums and news pages print: ``2024-05-01 12:30``, ``2024年5月1日 12:30``, ``3分钟前``, ``昨天 08:15``.
A time without a zone is Beijing time (UTC+8, no daylight saving): these are Chinese sites.

Whatever the text, ``parse_time`` returns a time or None, never raises: ``今天 24:00``, ``999999999天前``, a
superscript digit (``str.isdigit`` is true for ``²``) or a year past 9999 after conversion to UTC are None. A
returned time can always be converted to UTC and stored in a ``google.protobuf.Timestamp`` (years 1 to 9999).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

__all__ = ["BEIJING", "parse_time"]

BEIJING = timezone(timedelta(hours=8), "CST")

_WEIBO_FORMAT = "%a %b %d %H:%M:%S %z %Y"
_CHINESE_DATE = re.compile(
    r"(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s*T?\s*(?P<H>\d{1,2})\s*[:时]\s*(?P<M>\d{1,2})(?:\s*[:分]\s*(?P<S>\d{1,2})(?:\.\d+)?)?)?"
)
_RELATIVE = re.compile(r"^(?P<n>[0-9]{1,12})\s*(?P<unit>秒|分钟|小时|天)前$")
_RELATIVE_DAY = re.compile(r"^(?P<day>今天|昨天|前天)\s*(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})$")
_UNITS = {"秒": "seconds", "分钟": "minutes", "小时": "hours", "天": "days"}
_DAYS_BACK = {"今天": 0, "昨天": 1, "前天": 2}


def _aware(value: datetime, default_tz: timezone) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=default_tz)


def _epoch(text: str) -> datetime | None:
    if not (text.isascii() and text.isdigit()) or len(text) not in (10, 13):
        return None
    seconds = int(text) / (1000 if len(text) == 13 else 1)
    return datetime.fromtimestamp(seconds, UTC)


def _relative(text: str, now: datetime) -> datetime | None:
    if text == "刚刚":
        return now
    try:
        match = _RELATIVE.match(text)
        if match:
            return now - timedelta(**{_UNITS[match["unit"]]: int(match["n"])})
        match = _RELATIVE_DAY.match(text)
        if match:
            local = now.astimezone(BEIJING) - timedelta(days=_DAYS_BACK[match["day"]])
            return local.replace(hour=int(match["H"]), minute=int(match["M"]), second=0, microsecond=0)
    except (ValueError, OverflowError):  # 今天 24:00, 999999999天前 (before year 1)
        return None
    return None


def _chinese(text: str, default_tz: timezone) -> datetime | None:
    match = _CHINESE_DATE.search(text)
    if match is None:
        return None
    y, m, d, hh, mm, ss = (int(match[k] or 0) for k in ("y", "m", "d", "H", "M", "S"))
    try:
        return datetime(y, m, d, hh, mm, ss, tzinfo=default_tz)
    except ValueError:
        return None


def _storable(value: datetime | None) -> datetime | None:
    """``value`` if it converts to UTC within years 1..9999 (what a protobuf Timestamp holds), else None."""
    if value is None:
        return None
    try:
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return value


def parse_time(
    text: str,
    *,
    fmt: str = "",
    now: datetime | None = None,
    default_tz: timezone = BEIJING,
) -> datetime | None:
    """The instant ``text`` names, timezone-aware, or None when it is not a time this module can read.

    ``fmt`` is a strptime format to try first (a source's configured ``time_format``); ``now`` enables relative times
    like ``5分钟前``.
    """
    try:
        return _storable(_parse(text, fmt, now, default_tz))
    except (ValueError, OverflowError, TypeError):  # a parser of the standard library refusing in its own way
        return None


def _parse(text: str, fmt: str, now: datetime | None, default_tz: timezone) -> datetime | None:
    text = " ".join(text.split())
    if not text:
        return None
    if fmt:
        try:
            return _aware(datetime.strptime(text, fmt), default_tz)
        except ValueError:
            pass
    if (epoch := _epoch(text)) is not None:
        return epoch
    try:
        return _aware(datetime.fromisoformat(text), default_tz)
    except ValueError:
        pass
    try:
        return datetime.strptime(text, _WEIBO_FORMAT)
    except ValueError:
        pass
    if "," in text or text[:3].isalpha():
        try:
            # RFC 2822 reads "-0000" as "UTC, zone unknown", the only case that comes back naive.
            return _aware(parsedate_to_datetime(text), UTC)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    if now is not None and (relative := _relative(text, now)) is not None:
        return relative
    return _chinese(text, default_tz)
