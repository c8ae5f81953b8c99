"""How long it takes to show an amount as a person reads it (ledger/read/money.py): the
dashboard formats every amount cell of a page (a balances page: 50 rows of 6 amounts).

Times ``format_money`` (the currency's symbol put into the pattern once per locale and
currency) against ``babel_format_money`` (Babel's own substitution on every call, which
also looks up the currency's plural name each time), back to back in one process, on the
same random amounts; prints µs per amount and the ratio.

    .venv/bin/python bench/money_format.py [--amounts 20000]
"""

from __future__ import annotations

import argparse
import random
import time

from ledger.read import money

CURRENCIES = ("CNY", "USD", "JPY", "KWD")


def per_call(fn, amounts: list[int], locale: str) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for n, minor in enumerate(amounts):
        fn(minor, CURRENCIES[n % len(CURRENCIES)], locale)
    return (time.perf_counter() - start) / len(amounts) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amounts", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(7)
    amounts = [rng.randint(-(2**62), 2**62) for _ in range(args.amounts)]
    for locale in money.LOCALES:
        money.format_money(1, "CNY", locale)  # warm the caches
        money.babel_format_money(1, "CNY", locale)
        reference = per_call(money.babel_format_money, amounts, locale)
        fast = per_call(money.format_money, amounts, locale)
        print(
            f"{locale:6} format_money {fast:7.1f} µs/amount   "
            f"babel_format_money {reference:7.1f} µs/amount   ratio {fast / reference:.2f}"
        )


if __name__ == "__main__":
    main()
