"""A sharer's earnings per month and whether the ledger knows a sharer (ledger/read/
sharers.py), on both backends, over simulated platforms in currencies of every exponent;
``ledger balances`` as people and machines read it."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ledger.cli import main
from ledger.domain.entries import split_sharer_account
from ledger.read import balances, money, sharers
from ledger.read.totals import day_label
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import tables as t
from ledger.store.opening import open_store
from projectors import runner

CURRENCIES = ("CNY", "JPY", "KWD")


def _ledger(url: str, seed: int):
    store = open_store(url)
    events = generate(seed, orders=150, days=75, currencies=CURRENCIES).all()
    LedgerService(store).ingest([Received(e, f"sim:{n}", "sim") for n, e in enumerate(events)])
    runner.catch_up(store)
    return store


def _reference_by_month(conn) -> dict[tuple[str, str, str], int]:
    """(sharer, month, currency) -> Σ of every accrual and reversal posting on the sharer's
    pending and available accounts, summed here in Python from the whole journal."""
    e, p = t.entries, t.postings
    out: dict[tuple[str, str, str], int] = defaultdict(int)
    rows = conn.execute(
        select(p.c.account, p.c.currency, p.c.amount, e.c.occurred_at, e.c.kind).join(
            e, e.c.seq == p.c.entry_seq
        )
    )
    for account, currency, amount, at, kind in rows:
        split = split_sharer_account(account)
        if split and split[1] in ("pending", "available") and kind in ("accrual", "reversal"):
            out[(split[0], day_label(at // 86_400_000)[:7], currency)] += int(amount)
    return {k: v for k, v in out.items() if v}


@pytest.mark.parametrize("seed", [3, 29])
def test_earnings_by_month_equal_the_journal_and_sum_to_the_earnings(db_url, seed) -> None:
    store = _ledger(db_url, seed)
    try:
        with store.read() as conn:
            reference = _reference_by_month(conn)
            ids = sorted({s for s, _, _ in reference})
            assert len(ids) > 5 and len({m for _, m, _ in reference}) >= 3
            for sharer_id in ids:
                months = sharers.earnings_by_month(conn, sharer_id)
                got = {(sharer_id, m.month, m.currency): m.amount for m in months if m.amount}
                assert got == {k: v for k, v in reference.items() if k[0] == sharer_id}
                assert [(m.month, m.currency) for m in months] == sorted(
                    (m.month, m.currency) for m in months
                )
                by_level: dict[str, int] = defaultdict(int)
                for e in sharers.earnings(conn, sharer_id).by_level:
                    by_level[e.currency] += e.amount
                per_month: dict[str, int] = defaultdict(int)
                for m in months:
                    per_month[m.currency] += m.amount
                    assert m.currency_exponent == money.exponent(m.currency)
                assert dict(per_month) == {c: a for c, a in by_level.items() if a or c in per_month}
    finally:
        store.dispose()


def test_known_sharers(db_url) -> None:
    store = _ledger(db_url, 5)
    try:
        with store.read() as conn:
            enrolled = list(conn.execute(select(t.sharers.c.sharer_id)).scalars())
            holding = {b.sharer_id for b in balances.balances(conn, limit=10_000).items}
            assert holding and enrolled
            assert all(sharers.known(conn, s) for s in [*enrolled, *holding])
            for stranger in ("nobody", "u99999", " u00001", "%", "u0000_"):
                assert not sharers.known(conn, stranger), stranger
    finally:
        store.dispose()


def _cli(*args: str, locale: str | None = None):
    env = {"LEDGER_LOCALE": locale} if locale else {}
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)


def test_ledger_balances_reads_as_money(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    _ledger(url, 7).dispose()
    store = open_store(url)
    with store.read() as conn:
        rows = balances.journal_balances(conn)
    store.dispose()
    assert {r.currency for r in rows} == set(CURRENCIES)

    machine = json.loads(_cli("balances", "--db", url, "--json").output)
    assert [(r["sharer_id"], r["currency"], r["pending"]) for r in machine] == [
        (r.sharer_id, r.currency, r.pending) for r in rows
    ]
    assert all(r["currency_exponent"] == money.exponent(r["currency"]) for r in machine)

    for locale in ("en", "zh_CN"):
        shown = _cli("balances", "--db", url, locale=locale)
        assert shown.exit_code == 0, shown.output
        lines = shown.output.splitlines()[2:]
        assert len(lines) == len(rows)
        for line, r in zip(lines, rows, strict=True):
            for amount in (r.pending, r.available, r.inflight, r.paid):
                assert (
                    money.format_money(amount, r.currency, locale).replace("\u00a0", " ") in line
                ), (line, amount)
    zh = _cli("balances", "--db", url, locale="zh_CN").output
    assert "¥" in zh and "JP¥" in zh and "KWD " in zh

    raw = _cli("balances", "--db", url, "--minor").output.splitlines()[2:]
    for line, r in zip(raw, rows, strict=True):
        assert line.split()[-4:] == [str(r.pending), str(r.available), str(r.inflight), str(r.paid)]


def test_an_unknown_locale_setting_is_refused(tmp_path) -> None:
    result = CliRunner(env={"LEDGER_LOCALE": "fr_FR"}).invoke(
        main, ["balances", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"]
    )
    assert result.exit_code != 0 and "LEDGER_LOCALE" in result.output
