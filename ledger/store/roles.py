"""Least privilege on PostgreSQL: what the service role may do, granted by the owner.

The schema is owned by the role that runs the migrations (``ledger migrate --db
OWNER_URL --grant SERVICE_ROLE``). The service connects as a role that is neither owner
nor superuser, so it cannot disable the append-only triggers (ALTER TABLE needs the
owner), cannot set ``session_replication_role`` (superuser only), and has no UPDATE,
DELETE or TRUNCATE on any append-only table: the journal is out of its reach twice over.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from ledger.store import tables

# table -> privileges beyond SELECT and INSERT, and why the service needs them
EXTRA: dict[str, tuple[str, ...]] = {
    "orders": ("UPDATE", "DELETE"),  # refunds, completion, settlement (rows replaced)
    "payouts": ("UPDATE",),  # settled / failed
    "parked": ("UPDATE", "DELETE"),  # released events leave; rows are read FOR UPDATE
    "chain_heads": ("UPDATE",),  # the head moves forward (and is locked FOR UPDATE)
    "consumer_offsets": ("UPDATE",),  # checkpoints move forward (compare-and-set)
    "account_balances": ("UPDATE",),  # running sums kept with the postings (SPEC §3 bounds)
    # views (projectors/): folded in place, emptied by `ledger rebuild`; derived data that
    # `ledger check` recomputes from the journal
    **{
        name: ("UPDATE", "DELETE")
        for name in (
            "view_projectors",
            "view_checkpoints",
            "view_balances",
            "view_order_levels",
            "view_fee_totals",
        )
    },
}
READ_ONLY = ("alembic_version",)


def grant_statements(role: str) -> list[str]:
    """Idempotent: every privilege of ``role`` on the ledger's objects is revoked first."""
    quoted = '"' + role.replace('"', '""') + '"'
    names = [*tables.metadata.tables, *READ_ONLY]
    statements = [
        f"REVOKE ALL ON TABLE {', '.join(names)} FROM {quoted}",
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
    ]
    for name in READ_ONLY:
        statements.append(f"GRANT SELECT ON TABLE {name} TO {quoted}")
    for name in tables.metadata.tables:
        privileges = ", ".join(("SELECT", "INSERT", *EXTRA.get(name, ())))
        statements.append(f"GRANT {privileges} ON TABLE {name} TO {quoted}")
    from ledger.store.postgres import SEQUENCES

    for sequence in SEQUENCES.values():  # nextval only (setval needs UPDATE)
        statements.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {quoted}")
    return statements


def grant_service(conn: Connection, role: str) -> None:
    for statement in grant_statements(role):
        conn.execute(text(statement))
