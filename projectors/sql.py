"""The SQL each projector runs over ranges of the hash chains' entries.

A statement reads the ``entries``/``postings`` rows of its source: one range of one chain
(``ONE_CHAIN``, a catch-up) or ranges of many chains at once (``MANY_CHAINS``, a
rebuild), and folds them into its view with an upsert that adds
(``x = view.x + excluded.x``). Additions commute, so the result does not depend on the
order in which chains are caught up, nor on where the ranges were cut: a live view and
one rebuilt from scratch hold the same rows. The database does the work (set-based), so
a rebuild runs at the speed of a GROUP BY, not of a Python loop.

Account names are ``sharer:{id}:{bucket}`` (ids may contain ':'; the bucket, one of
four, never does), ``merchant:{id}:charges`` and ``platform:fees``. The LIKE patterns are
bind parameters (``PATTERNS``): a literal ':' inside ``text()`` would read as one.
"""

from __future__ import annotations

DAY_MS = 86_400_000

PATTERNS = {
    "like_sharer": "sharer:%",
    "like_pending": "%:pending",
    "like_available": "%:available",
    "like_inflight": "%:inflight",
    "like_paid": "%:paid",
    "like_merchant": "merchant:%",
    "fees_account": "platform:fees",
}

# Where a statement's entries come from: (FROM items naming ``entries e``, WHERE condition).
# ``ONE_CHAIN``: one range of one chain (:chain, :lo, :hi), what a catch-up folds.
# ``MANY_CHAINS``: any ranges of any chains at once, :ranges being a JSON list of
# {"chain", "lo", "hi"} objects; a rebuild folds every chain in one statement, so each view
# scans ``postings`` once instead of once per chain.
Source = tuple[str, str]
ONE_CHAIN: Source = ("entries e", "e.chain = :chain AND e.chain_seq > :lo AND e.chain_seq <= :hi")
_IN_RANGES = "ON e.chain = r.chain AND e.chain_seq > r.lo AND e.chain_seq <= r.hi"
MANY_CHAINS: dict[str, Source] = {
    "postgresql": (
        "json_to_recordset(CAST(:ranges AS json)) AS r(chain text, lo bigint, hi bigint)"
        f" JOIN entries e {_IN_RANGES}",
        "true",
    ),
    "sqlite": (
        "(SELECT json_extract(value, '$.chain') AS chain, json_extract(value, '$.lo') AS lo,"
        " json_extract(value, '$.hi') AS hi FROM json_each(:ranges)) r"
        f" JOIN entries e {_IN_RANGES}",
        "true",
    ),
}


# The sharer id inside a sharer account: drop "sharer:" (7 chars), then the bucket (lower
# case letters, trimmed by rtrim; it stops at the ':' before it) and that ':'. Two cheap
# string calls, where matching the account against each bucket's pattern cost a third of
# a rebuild.
def sharer_id(account: str) -> str:
    return f"substr({account}, 8, length(rtrim({account}, '{LOWER}')) - 8)"


LOWER = "abcdefghijklmnopqrstuvwxyz"
SHARER_ID = sharer_id("p.account")

# UTC day number of an event time, floored also before 1970 (SQL's / truncates).
DAY = f"(p.occurred_at - ((p.occurred_at % {DAY_MS}) + {DAY_MS}) % {DAY_MS}) / {DAY_MS}"


def balances(source: Source) -> str:
    """Summed per account, currency and entry kind first (the per-posting work is a hash),
    then spread into the bucket columns of each sharer: few rows reach the string work."""
    entries, in_range = source
    return f"""
INSERT INTO view_balances (generation, sharer_id, currency, pending, available, inflight,
                           paid, earned, reversed)
SELECT :generation, {sharer_id("x.account")} AS sharer_id, x.currency,
    sum(CASE WHEN x.account LIKE :like_pending THEN x.amount ELSE 0 END),
    sum(CASE WHEN x.account LIKE :like_available THEN x.amount ELSE 0 END),
    sum(CASE WHEN x.account LIKE :like_inflight THEN x.amount ELSE 0 END),
    sum(CASE WHEN x.account LIKE :like_paid THEN x.amount ELSE 0 END),
    sum(CASE WHEN x.kind = 'accrual' THEN x.amount ELSE 0 END),
    sum(CASE WHEN x.kind = 'reversal' THEN -x.amount ELSE 0 END)
FROM (
    SELECT p.account AS account, p.currency AS currency, e.kind AS kind,
        sum(p.amount) AS amount
    FROM {entries} JOIN postings p ON p.entry_seq = e.seq
    WHERE {in_range} AND p.account LIKE :like_sharer
    GROUP BY p.account, p.currency, e.kind
) x
WHERE true
GROUP BY sharer_id, x.currency
ON CONFLICT (generation, sharer_id, currency) DO UPDATE SET
    pending = view_balances.pending + excluded.pending,
    available = view_balances.available + excluded.available,
    inflight = view_balances.inflight + excluded.inflight,
    paid = view_balances.paid + excluded.paid,
    earned = view_balances.earned + excluded.earned,
    reversed = view_balances.reversed + excluded.reversed
"""


# Each level of an order, numbered from 1, and the order's level-1 sharer (its downline).
_LEVELS = {
    "postgresql": (
        "CROSS JOIN LATERAL json_array_elements_text(CAST(o.levels AS json)) WITH ORDINALITY"
        " AS l(value, ord)",
        "l.ord",
        "CAST(o.levels AS json) ->> 0",
    ),
    "sqlite": (", json_each(o.levels) l", "l.key + 1", "json_extract(o.levels, '$[0]')"),
}


def order_levels(backend: str, source: Source) -> str:
    """One row per level of every order the range touches, with the range's amounts added
    (zero for a level without postings in it). The levels come from the order's reference
    row (written in the same transaction as its accrual), because a level whose commission
    rounds to 0 posts nothing and so leaves no trace in the journal. An order has at most
    one settlement entry, so its time and chain link are those of any settlement posting."""
    entries, in_range = source
    levels, level_number, downline = _LEVELS[backend]
    return f"""
WITH touched AS (
    SELECT e.seq, e.kind, e.order_id, e.chain, e.chain_seq, e.occurred_at
    FROM {entries}
    WHERE {in_range} AND e.order_id IS NOT NULL
),
amounts AS (
    SELECT e.order_id AS order_id, {SHARER_ID} AS sharer_id,
        sum(CASE WHEN e.kind = 'accrual' THEN p.amount ELSE 0 END) AS accrued,
        sum(CASE WHEN e.kind = 'reversal' THEN -p.amount ELSE 0 END) AS reversed,
        sum(CASE WHEN e.kind = 'settlement' AND p.amount > 0 THEN p.amount ELSE 0 END)
            AS settled,
        max(CASE WHEN e.kind = 'settlement' THEN e.occurred_at END) AS settled_at,
        max(CASE WHEN e.kind = 'settlement' THEN e.chain END) AS settle_chain,
        max(CASE WHEN e.kind = 'settlement' THEN e.chain_seq END) AS settle_seq
    FROM touched e JOIN postings p ON p.entry_seq = e.seq
    WHERE p.account LIKE :like_sharer
    GROUP BY e.order_id, {SHARER_ID}
)
INSERT INTO view_order_levels (generation, order_id, sharer_id, level, currency, downline_id,
                               merchant_id, plan_id, accrued, reversed, settled, settled_at,
                               settle_chain, settle_chain_seq)
SELECT :generation, o.order_id, l.value, {level_number}, o.currency, {downline},
       o.merchant_id, o.plan_id, COALESCE(a.accrued, 0), COALESCE(a.reversed, 0),
       COALESCE(a.settled, 0), a.settled_at, a.settle_chain, a.settle_seq
FROM orders o {levels}
LEFT JOIN amounts a ON a.order_id = o.order_id AND a.sharer_id = l.value
WHERE o.order_id IN (SELECT order_id FROM touched)
ORDER BY l.value, o.order_id  -- key order: each insert lands beside the one before
ON CONFLICT (generation, sharer_id, order_id) DO UPDATE SET
    accrued = view_order_levels.accrued + excluded.accrued,
    reversed = view_order_levels.reversed + excluded.reversed,
    settled = view_order_levels.settled + excluded.settled,
    settled_at = COALESCE(view_order_levels.settled_at, excluded.settled_at),
    settle_chain = COALESCE(view_order_levels.settle_chain, excluded.settle_chain),
    settle_chain_seq = COALESCE(view_order_levels.settle_chain_seq, excluded.settle_chain_seq)
"""


def fee_totals(source: Source) -> str:
    entries, in_range = source
    return f"""
INSERT INTO view_fee_totals (generation, day, currency, fees, merchant_charges)
SELECT :generation, day, currency, sum(fee), sum(charge)
FROM (
    SELECT {DAY} AS day, p.currency AS currency,
        CASE WHEN p.account = :fees_account THEN p.amount ELSE 0 END AS fee,
        CASE WHEN p.account LIKE :like_merchant THEN -p.amount ELSE 0 END AS charge
    FROM {entries} JOIN postings p ON p.entry_seq = e.seq
    WHERE {in_range} AND (p.account = :fees_account OR p.account LIKE :like_merchant)
) x
WHERE true
GROUP BY day, currency
ON CONFLICT (generation, day, currency) DO UPDATE SET
    fees = view_fee_totals.fees + excluded.fees,
    merchant_charges = view_fee_totals.merchant_charges + excluded.merchant_charges
"""
