"""Checks before publishing: length per channel, forbidden words, unfilled placeholders, and masking.

Masking protects private persons: an 18-digit resident ID number (GB 11643) keeps its first 6 and last 4 characters,
a mainland mobile number its first 3 and last 4. Numbers the office publishes on purpose (``Checks.public_numbers``,
e.g. a hotline) stay. Masking changes the text that is delivered; it is reported, never blocking. Everything else
found blocks publishing, with a reason that names the channel and what to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.publisher.core.policy import ChannelRule, Checks
from services.publisher.core.texts import MISSING_MARK

__all__ = ["CheckResult", "check_release", "mask_private_numbers", "release_text"]

# Not part of a longer digit run, so a 19-digit order number is not an ID.
_ID_CARD = re.compile(
    r"(?<![0-9])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9])"
)
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9]\d{9}(?![0-9])")


@dataclass(frozen=True)
class CheckResult:
    title: str
    body: str
    # Blocking problems; empty means the release may go out on this channel.
    findings: tuple[str, ...]
    masked: int

    @property
    def ok(self) -> bool:
        return not self.findings


def release_text(title: str, body: str) -> str:
    """What the length limit measures: the title, a blank line, the body."""
    return f"{title}\n\n{body}"


def mask_private_numbers(text: str, public_numbers: frozenset[str] = frozenset()) -> tuple[str, int]:
    """The text with private ID-card and mobile numbers masked, and how many were masked."""
    count = 0

    def id_card(match: re.Match[str]) -> str:
        nonlocal count
        number = match.group(0)
        if number in public_numbers:
            return number
        count += 1
        return number[:6] + "*" * 8 + number[-4:]

    def mobile(match: re.Match[str]) -> str:
        nonlocal count
        number = match.group(0)
        digits = number[-11:]
        if number in public_numbers or digits in public_numbers:
            return number
        count += 1
        return number[: len(number) - 11] + digits[:3] + "****" + digits[-4:]

    text = _ID_CARD.sub(id_card, text)
    return _MOBILE.sub(mobile, text), count


def check_release(title: str, body: str, channel: ChannelRule, checks: Checks) -> CheckResult:
    """Mask, then check the masked text against the channel's rules; every finding is listed."""
    masked_title, in_title = mask_private_numbers(title, checks.public_numbers)
    masked_body, in_body = mask_private_numbers(body, checks.public_numbers)
    findings: list[str] = []
    if not masked_title.strip() or not masked_body.strip():
        findings.append("title and body must not be empty")
    text = release_text(masked_title, masked_body)
    if MISSING_MARK in text:
        missing = sorted(set(re.findall(re.escape(MISSING_MARK) + r"([^】]+)】", text)))
        findings.append(f"unfilled placeholders: {', '.join(missing)}")
    if len(text) > channel.max_length:
        findings.append(
            f"too long for channel {channel.id!r}: {len(text)} characters, the limit is {channel.max_length}"
        )
    for word in (*checks.forbidden_words, *channel.forbidden_words):
        if word and word in text:
            findings.append(f"forbidden word {word!r}")
    return CheckResult(masked_title, masked_body, tuple(dict.fromkeys(findings)), in_title + in_body)
