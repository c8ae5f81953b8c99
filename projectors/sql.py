"""The SQL each projector runs over one range of one hash chain's entries.

Every statement reads ``entries``/``postings`` rows with ``chain = :chain`` and
``:lo < chain_seq <= :hi`` and folds them into its view with an upsert that adds
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

RANGE = "e.chain = :chain AND e.chain_seq > :lo AND e.chain_seq <= :hi"
JOURNAL = "entries e JOIN postings p ON p.entry_seq = e.seq"

# The sharer id inside a sharer account: drop "sharer:" (7 chars) and ":{bucket}".
SHARER_ID = (
    "substr(p.account, 8, length(p.account) - 7 - (CASE"
    " WHEN p.account LIKE :like_pending THEN 8"
    " WHEN p.account LIKE :like_available THEN 10"
    " WHEN p.account LIKE :like_inflight THEN 9"
    " ELSE 5 END))"
)

# UTC day number of an event time, floored also before 1970 (SQL's / truncates).
DAY = f"(p.occurred_at - ((p.occurred_at % {DAY_MS}) + {DAY_MS}) % {DAY_MS}) / {DAY_MS}"

BALANCES = f"""
INSERT INTO view_balances (sharer_id, currency, pending, available, inflight, paid, earned,
                           reversed)
SELECT sharer_id, currency, sum(pending), sum(available), sum(inflight), sum(paid),
       sum(earned), sum(reversed)
FROM (
    SELECT {SHARER_ID} AS sharer_id, p.currency AS currency,
        CASE WHEN p.account LIKE :like_pending THEN p.amount ELSE 0 END AS pending,
        CASE WHEN p.account LIKE :like_available THEN p.amount ELSE 0 END AS available,
        CASE WHEN p.account LIKE :like_inflight THEN p.amount ELSE 0 END AS inflight,
        CASE WHEN p.account LIKE :like_paid THEN p.amount ELSE 0 END AS paid,
        CASE WHEN e.kind = 'accrual' THEN p.amount ELSE 0 END AS earned,
        CASE WHEN e.kind = 'reversal' THEN -p.amount ELSE 0 END AS reversed
    FROM {JOURNAL}
    WHERE {RANGE} AND p.account LIKE :like_sharer
) x
WHERE true
GROUP BY sharer_id, currency
ON CONFLICT (sharer_id, currency) DO UPDATE SET
    pending = view_balances.pending + excluded.pending,
    available = view_balances.available + excluded.available,
    inflight = view_balances.inflight + excluded.inflight,
    paid = view_balances.paid + excluded.paid,
    earned = view_balances.earned + excluded.earned,
    reversed = view_balances.reversed + excluded.reversed
"""

_ORDERS_IN_RANGE = f"""
    SELECT e.order_id FROM entries e WHERE {RANGE} AND e.order_id IS NOT NULL
"""

# One row per level of every order the range touches, amounts zero: the levels come from
# the order's reference row (written in the same transaction as its accrual), because a
# level whose commission rounds to 0 posts nothing and so leaves no trace in the journal.
ORDER_LEVELS_SKELETON = {
    "postgresql": f"""
INSERT INTO view_order_levels (order_id, sharer_id, level, currency, downline_id, merchant_id,
                               plan_id, accrued, reversed, settled)
SELECT o.order_id, l.value, l.ord, o.currency, CAST(o.levels AS json) ->> 0, o.merchant_id,
       o.plan_id, 0, 0, 0
FROM orders o
CROSS JOIN LATERAL json_array_elements_text(CAST(o.levels AS json)) WITH ORDINALITY
    AS l(value, ord)
WHERE o.order_id IN ({_ORDERS_IN_RANGE})
ON CONFLICT (order_id, sharer_id) DO NOTHING
""",
    "sqlite": f"""
INSERT INTO view_order_levels (order_id, sharer_id, level, currency, downline_id, merchant_id,
                               plan_id, accrued, reversed, settled)
SELECT o.order_id, l.value, l.key + 1, o.currency, json_extract(o.levels, '$[0]'),
       o.merchant_id, o.plan_id, 0, 0, 0
FROM orders o, json_each(o.levels) l
WHERE o.order_id IN ({_ORDERS_IN_RANGE})
ON CONFLICT (order_id, sharer_id) DO NOTHING
""",
}

ORDER_LEVEL_AMOUNTS = f"""
INSERT INTO view_order_levels (order_id, sharer_id, level, currency, downline_id, merchant_id,
                               plan_id, accrued, reversed, settled, settled_at, settle_chain,
                               settle_chain_seq)
SELECT a.order_id, a.sharer_id, ol.level, ol.currency, ol.downline_id, ol.merchant_id,
       ol.plan_id, a.accrued, a.reversed, a.settled, a.settled_at,
       CASE WHEN a.settled_at IS NULL THEN NULL ELSE :chain END, a.settle_seq
FROM (
    SELECT e.order_id AS order_id, {SHARER_ID} AS sharer_id,
        sum(CASE WHEN e.kind = 'accrual' THEN p.amount ELSE 0 END) AS accrued,
        sum(CASE WHEN e.kind = 'reversal' THEN -p.amount ELSE 0 END) AS reversed,
        sum(CASE WHEN e.kind = 'settlement' AND p.amount > 0 THEN p.amount ELSE 0 END)
            AS settled,
        max(CASE WHEN e.kind = 'settlement' THEN e.occurred_at END) AS settled_at,
        max(CASE WHEN e.kind = 'settlement' THEN e.chain_seq END) AS settle_seq
    FROM {JOURNAL}
    WHERE {RANGE} AND e.order_id IS NOT NULL AND p.account LIKE :like_sharer
    GROUP BY e.order_id, {SHARER_ID}
) a
JOIN view_order_levels ol ON ol.order_id = a.order_id AND ol.sharer_id = a.sharer_id
WHERE true
ON CONFLICT (order_id, sharer_id) DO UPDATE SET
    accrued = view_order_levels.accrued + excluded.accrued,
    reversed = view_order_levels.reversed + excluded.reversed,
    settled = view_order_levels.settled + excluded.settled,
    settled_at = COALESCE(view_order_levels.settled_at, excluded.settled_at),
    settle_chain = COALESCE(view_order_levels.settle_chain, excluded.settle_chain),
    settle_chain_seq = COALESCE(view_order_levels.settle_chain_seq, excluded.settle_chain_seq)
"""

FEE_TOTALS = f"""
INSERT INTO view_fee_totals (day, currency, fees, merchant_charges)
SELECT day, currency, sum(fee), sum(charge)
FROM (
    SELECT {DAY} AS day, p.currency AS currency,
        CASE WHEN p.account = :fees_account THEN p.amount ELSE 0 END AS fee,
        CASE WHEN p.account LIKE :like_merchant THEN -p.amount ELSE 0 END AS charge
    FROM {JOURNAL}
    WHERE {RANGE} AND (p.account = :fees_account OR p.account LIKE :like_merchant)
) x
WHERE true
GROUP BY day, currency
ON CONFLICT (day, currency) DO UPDATE SET
    fees = view_fee_totals.fees + excluded.fees,
    merchant_charges = view_fee_totals.merchant_charges + excluded.merchant_charges
"""
