from __future__ import annotations

import pytest

from services.publisher.core.checks import check_release, mask_private_numbers
from services.publisher.core.policy import ChannelRule, Checks

CHANNEL = ChannelRule(id="mastodon-qingfeng", kind="mastodon", display_name="m", max_length=60,
                      forbidden_words=("小道消息",))  # fmt: skip
CHECKS = Checks(forbidden_words=("内部资料",), public_numbers=frozenset({"12388", "13800000000"}))


@pytest.mark.parametrize(
    ("text", "masked", "count"),
    [
        ("身份证号330106199001011234。", "身份证号330106********1234。", 1),
        ("身份证号33010619900101123X", "身份证号330106********123X", 1),
        ("电话13812345678联系", "电话138****5678联系", 1),
        ("电话+86 13812345678", "电话+86 138****5678", 1),
        ("举报电话12388", "举报电话12388", 0),
        ("公开热线13800000000", "公开热线13800000000", 0),
        ("订单号1381234567890123456789", "订单号1381234567890123456789", 0),  # a longer digit run is not a phone
        ("日期20261130，编号12345", "日期20261130，编号12345", 0),
    ],
)
def test_masking(text: str, masked: str, count: int) -> None:
    assert mask_private_numbers(text, CHECKS.public_numbers) == (masked, count)


@pytest.mark.parametrize(
    ("title", "body", "finding"),
    [
        ("标题", "正" * 60, "too long for channel 'mastodon-qingfeng': 64 characters, the limit is 60"),
        ("标题", "这是内部资料。", "forbidden word '内部资料'"),
        ("标题", "据小道消息。", "forbidden word '小道消息'"),
        ("标题", "经【待补充：核查结论】。", "unfilled placeholders: 核查结论"),
        ("", "正文", "title and body must not be empty"),
    ],
)
def test_a_failed_check_names_the_reason(title: str, body: str, finding: str) -> None:
    result = check_release(title, body, CHANNEL, CHECKS)
    assert not result.ok
    assert finding in result.findings


def test_a_clean_release_passes_masked() -> None:
    result = check_release("通报", "当事人电话13912345678。", CHANNEL, CHECKS)
    assert result.ok and result.masked == 1
    assert result.body == "当事人电话139****5678。"


def test_the_limit_is_measured_after_masking_on_the_full_release() -> None:
    exact = "正" * (60 - len("标题") - 2)
    assert check_release("标题", exact, CHANNEL, CHECKS).ok
    assert not check_release("标题", exact + "正", CHANNEL, CHECKS).ok
