"""SQLAlchemy Core tables, shared by every backend.

Three groups:
- journal (append-only, enforced by triggers): ``entries``, ``postings``, ``events``,
  ``dead_letters``. Nothing here is ever updated or deleted.
- reference state (mutable, rebuilt by replaying the journal's events): plans, sharers,
  clicks, orders, refunds, payouts, settlement runs.
- bookkeeping (mutable): ``parked`` (events waiting for a reference), ``chain_heads``
  (the last link of each hash chain, for cheap appends), ``consumer_offsets``.

Times are BIGINT milliseconds since the epoch (UTC); money is BIGINT minor units.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
)

metadata = MetaData()

# --- journal: append-only -------------------------------------------------------------

entries = Table(
    "entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("chain", String(200), nullable=False),
    Column("chain_seq", BigInteger, nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("ordinal", Integer, nullable=False),  # index among the entries of one event
    Column("kind", String(40), nullable=False),
    Column("rule", String(80), nullable=False),
    Column("plan_id", String(200)),
    Column("order_id", String(200)),
    Column("payout_id", String(200)),
    Column("occurred_at", BigInteger, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("chain", "chain_seq", name="uq_entries_chain_seq"),
    UniqueConstraint("event_id", "ordinal", name="uq_entries_event_ordinal"),
)
Index("ix_entries_order", entries.c.order_id)

postings = Table(
    "postings",
    metadata,
    Column("entry_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ordinal", Integer, primary_key=True, autoincrement=False),
    Column("account", String(300), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("occurred_at", BigInteger, nullable=False),  # copied from the entry for as-of sums
)
# the account alone: equal keys share one index tuple (B-tree deduplication), and every
# reader selects by account and reads the posting's row anyway (revision 0007)
Index("ix_postings_account", postings.c.account)

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # arrival order
    Column("event_id", String(200), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("source", String(300), nullable=False),
    Column("outcome", String(20), nullable=False),  # applied | rejected | parked (on arrival)
    Column("payload", Text, nullable=False),  # canonical JSON form
    # the event log is hash chained like the journal (ledger/chain/eventlog.py), per writer chain
    Column("chain", String(200), nullable=False),
    Column("chain_seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("uq_events_chain_seq", events.c.chain, events.c.chain_seq, unique=True)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(200)),
    Column("event_type", String(40)),
    Column("source", String(300), nullable=False),
    Column("reason", String(80), nullable=False),
    Column("message", Text, nullable=False),
    Column("payload", Text, nullable=False),  # JSON form, or hex of undecodable bytes
    Column("recorded_at", BigInteger, nullable=False),
    # sha256 of source and payload: the same record ingested again is a duplicate, not a
    # second dead letter (NULL only in rows written before revision 0003)
    Column("dedup_key", String(64)),
)
Index("ix_dead_letters_reason", dead_letters.c.reason)
Index("uq_dead_letters_dedup_key", dead_letters.c.dedup_key, unique=True)

JOURNAL_TABLES = ("entries", "postings", "events", "dead_letters")

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("signature", String(200), primary_key=True),  # hex Ed25519 signature of body
    Column("created_at", BigInteger, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the signed canonical JSON (ledger/chain/checkpoint.py)
)

# --- reference state: mutable --------------------------------------------------------
# (plans, sharers, clicks, refunds and settlement runs are written once and never changed:
# append-only like the journal since revision 0004, see WRITE_ONCE_TABLES)

plans = Table(
    "plans",
    metadata,
    Column("plan_id", String(200), primary_key=True),
    Column("effective_from", BigInteger, nullable=False, unique=True),
    Column("body", Text, nullable=False),  # JSON of the plan_published fields
)

sharers = Table(
    "sharers",
    metadata,
    Column("sharer_id", String(200), primary_key=True),
    Column("upline_id", String(200)),
    Column("enrolled_at", BigInteger, nullable=False),
)
Index("ix_sharers_upline", sharers.c.upline_id)

clicks = Table(
    "clicks",
    metadata,
    Column("click_id", String(200), primary_key=True),
    Column("buyer_id", String(200), nullable=False),
    Column("sharer_id", String(200), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("arrival", BigInteger, nullable=False),  # ties on time: first received wins
)
# attribution's probe: a buyer's latest click at or before a time, the first received among
# same-time ones, is the first entry at or after (buyer, time) (ledger/store/state_sql.py)
Index("ix_clicks_latest", clicks.c.buyer_id, clicks.c.occurred_at.desc(), clicks.c.arrival)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(200), primary_key=True),
    Column("buyer_id", String(200), nullable=False),
    Column("merchant_id", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("plan_id", String(200)),
    Column("levels", Text, nullable=False),  # JSON list of level sharer ids ([] = no commission)
    Column("lines", Text, nullable=False),  # JSON: per line amount, rate, refunded
    Column("posted", Text, nullable=False),  # JSON: commission currently posted per party
    Column("no_commission_reason", String(40)),
    Column("completed_at", BigInteger),
    Column("settled_by", String(200)),  # settlement run id, once settled
    Column("settle_due", BigInteger),  # completed_at + frozen period, for the settlement scan
)
Index("ix_orders_settle_due", orders.c.settle_due)
# The orders a settlement run may settle (completed, not settled yet), by id: a run pages
# through them (keyset on order_id, ledger/store/state_sql.py) touching no settled order,
# however many the history holds. Ids in code point order, as the rules sort them: SQLite's
# BINARY collation is; on PostgreSQL the key is collated "C" (migration 0009).
UNSETTLED = and_(orders.c.settled_by.is_(None), orders.c.settle_due.is_not(None))
Index(
    "ix_orders_unsettled",
    orders.c.order_id,
    sqlite_where=UNSETTLED,
    postgresql_where=UNSETTLED,
)

refunds = Table(
    "refunds",
    metadata,
    Column("refund_id", String(200), primary_key=True),
    Column("order_id", String(200), nullable=False),
)
Index("ix_refunds_order", refunds.c.order_id)

payouts = Table(
    "payouts",
    metadata,
    Column("payout_id", String(200), primary_key=True),
    Column("sharer_id", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("state", String(20), nullable=False),  # inflight | paid | failed | rejected
)
Index("ix_payouts_sharer", payouts.c.sharer_id, payouts.c.payout_id)

settlement_runs = Table(
    "settlement_runs",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("as_of", BigInteger, nullable=False),
)

# Σ postings per account and currency, kept with the postings (Store.append_entries) so the
# engine can check SPEC §3's ±2^62 bound without summing an account's history. PostgreSQL:
# one row per writing chain (shard = chain), so writers of different chains never wait on
# one hot row; the balance is the sum over shards, NUMERIC because a shard is one chain's
# share and may outgrow int64. SQLite, one writer at a time: shard "" holds the balance.
account_balances = Table(
    "account_balances",
    metadata,
    Column("account", String(300), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("shard", String(200), primary_key=True),
    Column("balance", BigInteger().with_variant(Numeric(40, 0), "postgresql"), nullable=False),
)

WRITE_ONCE_TABLES = ("plans", "sharers", "clicks", "refunds", "settlement_runs")
# every table the database refuses to UPDATE, DELETE or TRUNCATE
APPEND_ONLY_TABLES = (*JOURNAL_TABLES, "checkpoints", *WRITE_ONCE_TABLES)

# --- bookkeeping ------------------------------------------------------------------------

parked = Table(
    "parked",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("waits_for", String(300), nullable=False),  # e.g. "order:O1", "sharer:S1"
    Column("subject", String(200)),  # the sharer a waiting enrollment would enroll
    Column("arrival", BigInteger, nullable=False),
    Column("type", String(40), nullable=False),
    Column("source", String(300), nullable=False),
    Column("payload", Text, nullable=False),
    Column("parked_at", BigInteger, nullable=False),
)
Index("ix_parked_waits_for", parked.c.waits_for)
Index("ix_parked_subject", parked.c.subject)

chain_heads = Table(
    "chain_heads",
    metadata,
    Column("chain", String(200), primary_key=True),
    Column("chain_seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    # the last link of the chain's event log (events.chain_seq / events.hash)
    Column("events_seq", BigInteger, nullable=False, server_default="0"),
    Column("events_hash", String(64), nullable=False, server_default="0" * 64),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", String(200), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    # the highest accounts-topic offset whose barrier marker this partition has passed
    # (docs/ordering.md); -1 before the first marker
    Column("marker", BigInteger, nullable=False, server_default="-1"),
)
