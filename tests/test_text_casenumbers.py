"""bot.text.casenumbers, and bot.text.pii.find_phone as the dialogue and /api/v1/analyze use it."""

from __future__ import annotations

import pytest

from bot.text.analyze import without_phones
from bot.text.casenumbers import find_case_number
from bot.text.pii import find_phone


@pytest.mark.parametrize("text,phone", [
    ("我的电话13800138000，请联系我", "13800138000"),
    ("手机 138-0013-8000", "13800138000"),
    ("+86 13912345678 白天都在", "13912345678"),
    ("座机0755-86001234", "0755-86001234"),
    ("办公室电话 010 62751234", "010-62751234"),
])
def test_phone(text: str, phone: str) -> None:
    assert find_phone(text) == phone


@pytest.mark.parametrize("text", [
    "订单号 2023051812345678",
    "3号楼1201室",
    "身份证11010519491231002X",
    "12345热线打了没用",
])
def test_not_a_phone(text: str) -> None:
    assert find_phone(text) is None




@pytest.mark.parametrize("text,number", [
    ("帮我查查 ｓｌ2026 - 000123 谢谢", "SL2026-000123"),
    ("sl2026000999", "SL2026-000999"),
    ("编号SL2026—123456进度怎么样", "SL2026-123456"),
    ("我的编号是 SL 2026 0042", "SL2026-000042"),
])
def test_case_numbers(text: str, number: str) -> None:
    assert find_case_number(text) == number


def test_case_numbers_read_the_configured_prefix() -> None:
    assert find_case_number("查一下 hz2026-000123", prefix="HZ") == "HZ2026-000123"
    assert find_case_number("查一下 SL2026-000123", prefix="HZ") is None
    assert find_case_number("我的问题怎么样了") is None
    assert find_case_number("ASL2026-000123") is None  # another prefix that ends in SL


def test_phone_typed_on_a_phone_keyboard() -> None:
    assert find_phone("电话 139 1234 5678") == "13912345678"
    assert find_phone("座机0571-88886666") == "0571-88886666"
    assert find_phone("１３９１２３４５６７８") == "13912345678"
    assert find_phone("12345") is None
    assert "13912345678" not in without_phones("我的电话13912345678，3号楼")
    assert "3号楼" in without_phones("我的电话13912345678，3号楼")
