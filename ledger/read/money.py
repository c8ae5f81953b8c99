"""Money as people read it: integer minor units shown in their currency's units, per
locale (¥1,234.56, not 123456), and the currency's exponent for machines.

The exponent is ISO 4217's minor unit (CNY and USD 2, JPY 0, KWD 3; the iso4217 package),
not CLDR's display digits, which differ for a few currencies (IQD: ISO 3, CLDR 0): the
ledger's integers are ISO minor units. Symbols, separators and signs are CLDR's (Babel).
Conversion is exact: the integer's digits become a Decimal with the exponent as its
scale, never a float. A code ISO 4217 does not know (or one without minor units, such as
XAU) has exponent 0: its amounts are shown as the integers recorded.
"""

from __future__ import annotations

import copy
import decimal
from decimal import Decimal
from functools import lru_cache
from typing import Any

import iso4217
from babel import Locale, UnknownLocaleError
from babel.numbers import NumberFormatError, get_currency_symbol, parse_decimal

from ledger.config import LOCALES as LOCALES  # re-exported: the offered locales

DEFAULT_LOCALE = "en"
# 2^62 minor units (the ledger's bound) has 19 digits; room for any scale on top of them
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation])


@lru_cache(maxsize=512)
def exponent(currency: str) -> int:
    """ISO 4217's minor-unit exponent of ``currency`` (0 for a code it does not know)."""
    try:
        found = iso4217.Currency(currency.upper()).exponent
    except (ValueError, KeyError):
        return 0
    return int(found or 0)


def exponents(currencies: object) -> dict[str, int]:
    """``{currency: exponent}`` of each code in ``currencies`` (an iterable of codes)."""
    return {c: exponent(c) for c in sorted(set(currencies))}  # type: ignore[call-overload]


def to_decimal(minor: int, currency: str) -> Decimal:
    """``minor`` units as an exact Decimal of the currency's units (123456 CNY: 1234.56)."""
    sign, digits = (1 if minor < 0 else 0), tuple(int(d) for d in str(abs(int(minor))))
    return Decimal((sign, digits, -exponent(currency)))


def to_minor(amount: Decimal, currency: str) -> int:
    """The inverse of ``to_decimal``; ValueError if ``amount`` has more decimals than the
    currency has minor units."""
    scaled = amount.scaleb(exponent(currency), _EXACT)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} has minor units")
    return int(scaled)


def _match(name: str) -> str | None:
    """The one of LOCALES that ``name`` ("zh-CN", "zh_cn", "zh", "en-US") asks for: the
    same locale, else the first with its language."""
    wanted = name.strip().replace("-", "_").lower()
    for known in LOCALES:
        if wanted == known.lower():
            return known
    language = wanted.split("_")[0]
    return next((k for k in LOCALES if k.split("_")[0].lower() == language), None)


def locale_of(name: str | None) -> str:
    """One of LOCALES for a locale name ("zh-CN", "zh_cn", "zh", "en-US"), else the default."""
    return (_match(name) if name else None) or DEFAULT_LOCALE


def from_accept_language(header: str | None) -> str | None:
    """The best of LOCALES for an Accept-Language header, or None if none fits."""
    wanted: list[tuple[float, int, str]] = []
    for n, part in enumerate((header or "")[:1000].split(",")[:20]):
        name, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if name and name != "*" and quality > 0:
            wanted.append((-quality, n, name))
    return next((m for _, _, name in sorted(wanted) if (m := _match(name))), None)


@lru_cache(maxsize=16)
def _locale(name: str) -> Locale:
    try:
        return Locale.parse(locale_of(name))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE)


@lru_cache(maxsize=512)
def _pattern(locale: str, currency: str, with_symbol: bool) -> tuple[Any, str, bool]:
    """The locale's currency pattern (or decimal pattern) with exactly the currency's
    exponent of fraction digits; the symbol; whether Babel must still put the currency in.

    The symbol and code are put into the pattern's affixes here, once, as Babel's
    ``apply`` would on every call (which also looks up the currency's plural name each
    time, needed only by a "¤¤¤" pattern): the text is the same (a test holds it to
    Babel's own), in a fraction of the time."""
    loc = _locale(locale)
    pattern = copy.copy(
        loc.currency_formats["standard"] if with_symbol else loc.decimal_formats[None]
    )
    digits = exponent(currency)
    pattern.frac_prec = (digits, digits)
    symbol = get_currency_symbol(currency, loc) if with_symbol else ""
    affixes = (*pattern.prefix, *pattern.suffix)
    if not with_symbol or any("¤¤¤" in a for a in affixes):
        return pattern, symbol, with_symbol

    def put(affix: str) -> str:
        return affix.replace("¤¤", currency.upper()).replace("¤", symbol)

    pattern.prefix = tuple(put(a) for a in pattern.prefix)
    pattern.suffix = tuple(put(a) for a in pattern.suffix)
    return pattern, symbol, False


def format_money(minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``minor`` units of ``currency`` as a person reads them in ``locale``: symbol,
    separators, the currency's decimals and a minus sign if negative."""
    pattern, symbol, needs_currency = _pattern(locale, currency, True)
    value = to_decimal(minor, currency)
    with decimal.localcontext(_EXACT):
        text = str(
            pattern.apply(
                value,
                _locale(locale),
                currency=currency if needs_currency else None,
                currency_digits=False,
            )
        )
    return _spaced(text, symbol)


def babel_format_money(minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``format_money`` through Babel's own currency substitution on every call: the
    reference the fast path is tested against."""
    loc = _locale(locale)
    pattern = copy.copy(loc.currency_formats["standard"])
    pattern.frac_prec = (exponent(currency),) * 2
    with decimal.localcontext(_EXACT):
        text = str(
            pattern.apply(
                to_decimal(minor, currency), loc, currency=currency, currency_digits=False
            )
        )
    return _spaced(text, get_currency_symbol(currency, loc))


def _spaced(text: str, symbol: str) -> str:
    """CLDR's currency spacing, which Babel leaves out: a symbol that ends (or starts) with
    a letter is kept apart from the digits by a no-break space ("KWD 1,234.567")."""
    at = text.find(symbol)
    if at < 0 or not symbol:
        return text
    end = at + len(symbol)
    if symbol[-1].isalpha() and end < len(text) and text[end].isdigit():
        return f"{text[:end]}\u00a0{text[end:]}"
    if symbol[0].isalpha() and at > 0 and text[at - 1].isdigit():
        return f"{text[:at]}\u00a0{text[at:]}"
    return text


def format_number(minor: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """As ``format_money`` without the symbol (a table whose column names the currency)."""
    pattern, _, _ = _pattern(locale, currency, False)
    value = to_decimal(minor, currency)
    with decimal.localcontext(_EXACT):
        return str(pattern.apply(value, _locale(locale), currency_digits=False))


def parse_number(text: str, currency: str, locale: str = DEFAULT_LOCALE) -> int:
    """Minor units of an amount typed as ``format_number`` shows it; ValueError if it is
    not a number in ``locale`` or has more decimals than the currency has."""
    try:
        with decimal.localcontext(_EXACT):
            amount = parse_decimal(text, locale=_locale(locale), strict=True)
    except NumberFormatError as bad:
        raise ValueError(str(bad)) from bad
    return to_minor(amount, currency)
