"""Amounts as people read them (ledger/read/money.py): ISO 4217 exponents, CLDR symbols
and separators per locale, exact to the last minor unit up to the ledger's ±2^62 bound."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.config import ConfigError, load_settings
from ledger.read import money

BOUND = 2**62  # the largest balance the ledger allows (ledger/domain/engine.py)
NBSP = "\u00a0"
CURRENCIES = ["CNY", "USD", "JPY", "KWD", "EUR", "IQD", "XAU", "ZZZ"]


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("CNY", 2), ("USD", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("KRW", 0), ("EUR", 2)]
    + [("IQD", 3)]  # ISO 4217 says 3 where CLDR's display digits say 0: ISO decides
    + [("XAU", 0), ("ZZZ", 0)],  # no minor unit / not a code ISO knows: the integer as is
)
def test_the_exponent_is_iso_4217s(currency, exponent) -> None:
    assert money.exponent(currency) == exponent


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "shown"),
    [
        (123456, "CNY", "en", "CN¥1,234.56"),
        (123456, "CNY", "zh_CN", "¥1,234.56"),
        (-123456, "CNY", "zh_CN", "-¥1,234.56"),
        (-123456, "USD", "en", "-$1,234.56"),
        (-123456, "USD", "zh_CN", "-US$1,234.56"),
        (1234, "JPY", "en", "¥1,234"),
        (1234, "JPY", "zh_CN", "JP¥1,234"),
        (1234567, "KWD", "en", f"KWD{NBSP}1,234.567"),
        (-1, "KWD", "zh_CN", f"-KWD{NBSP}0.001"),
        (0, "CNY", "en", "CN¥0.00"),
        (0, "JPY", "zh_CN", "JP¥0"),
        (5, "CNY", "en", "CN¥0.05"),
        (BOUND, "CNY", "zh_CN", "¥46,116,860,184,273,879.04"),
        (-BOUND, "CNY", "zh_CN", "-¥46,116,860,184,273,879.04"),
        (BOUND, "JPY", "en", "¥4,611,686,018,427,387,904"),
        (-BOUND, "KWD", "en", f"-KWD{NBSP}4,611,686,018,427,387.904"),
        (BOUND - 1, "USD", "en", "$46,116,860,184,273,879.03"),
    ],
)
def test_amounts_read_as_in_the_locale(minor, currency, locale, shown) -> None:
    assert money.format_money(minor, currency, locale) == shown


def test_an_unknown_locale_reads_as_the_default() -> None:
    assert money.format_money(123456, "CNY", "xx_YY") == money.format_money(123456, "CNY", "en")


@pytest.mark.parametrize(
    ("minor", "currency", "decimal"),
    [(123456, "CNY", "1234.56"), (-1, "KWD", "-0.001"), (7, "JPY", "7"), (-BOUND, "USD", None)],
)
def test_to_decimal_is_exact(minor, currency, decimal) -> None:
    value = money.to_decimal(minor, currency)
    if decimal is not None:
        assert value == Decimal(decimal) and str(value) == decimal
    assert money.to_minor(value, currency) == minor


def test_to_minor_refuses_more_decimals_than_the_currency_has() -> None:
    with pytest.raises(ValueError):
        money.to_minor(Decimal("1.5"), "JPY")
    with pytest.raises(ValueError):
        money.to_minor(Decimal("0.001"), "CNY")


amounts = st.integers(-BOUND, BOUND) | st.sampled_from([0, 1, -1, BOUND, -BOUND, 10**15])


@settings(deadline=None)  # a loaded machine is no failure
@given(minor=amounts, currency=st.sampled_from(CURRENCIES), locale=st.sampled_from(money.LOCALES))
def test_parse_of_format_is_the_amount(minor, currency, locale) -> None:
    shown = money.format_number(minor, currency, locale)
    assert money.parse_number(shown, currency, locale) == minor


@settings(deadline=None)  # a loaded machine is no failure
@given(minor=amounts, currency=st.sampled_from(CURRENCIES), locale=st.sampled_from(money.LOCALES))
def test_the_amount_shown_keeps_every_digit_and_the_sign(minor, currency, locale) -> None:
    """The digits read, in order, are the minor units' (zero-padded to the exponent), and
    a minus sign shows exactly when the amount is negative."""
    shown = money.format_money(minor, currency, locale)
    digits = "".join(re.findall(r"\d", shown))
    assert digits == str(abs(minor)).zfill(money.exponent(currency) + 1)
    assert shown.startswith("-") == (minor < 0)
    assert shown.count(".") == (1 if money.exponent(currency) else 0)


@pytest.mark.parametrize(
    ("name", "locale"),
    [("zh_CN", "zh_CN"), ("zh-CN", "zh_CN"), ("zh-cn", "zh_CN"), ("zh", "zh_CN")]
    + [("en", "en"), ("en-US", "en"), ("fr", "en"), ("", "en"), (None, "en")],
)
def test_locale_names(name, locale) -> None:
    assert money.locale_of(name) == locale


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR,fr;q=0.9,zh;q=0.5", "zh_CN"),
        ("en;q=0.2,zh-CN;q=0.8", "zh_CN"),
        ("fr", None),
        ("zh;q=0", None),
        ("", None),
        (None, None),
        ("*;q=x,,;", None),
    ],
)
def test_accept_language(header, locale) -> None:
    assert money.from_accept_language(header) == locale


@settings(deadline=None)
@given(minor=amounts, currency=st.sampled_from(CURRENCIES), locale=st.sampled_from(money.LOCALES))
def test_the_fast_path_reads_as_babels_own(minor, currency, locale) -> None:
    """format_money puts the symbol into the pattern once; Babel's own substitution on
    every call gives the same text."""
    assert money.format_money(minor, currency, locale) == money.babel_format_money(
        minor, currency, locale
    )


@pytest.mark.parametrize(
    ("value", "locale"), [(None, "en"), ("en", "en"), ("zh_CN", "zh_CN"), ("zh-cn", "zh_CN")]
)
def test_the_locale_setting(value, locale) -> None:
    environ = {} if value is None else {"LEDGER_LOCALE": value}
    assert load_settings(environ).locale == locale


@pytest.mark.parametrize("value", ["fr", "zh", "", "en_US"])
def test_a_locale_setting_not_offered_is_refused(value) -> None:
    with pytest.raises(ConfigError, match="LEDGER_LOCALE"):
        load_settings({"LEDGER_LOCALE": value})
