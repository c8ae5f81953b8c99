"""Least privilege on PostgreSQL: what the service role may do, granted by the owner.

The schema is owned by the role that runs the migrations (``ledger migrate --db
OWNER_URL --grant SERVICE_ROLE``). The service connects as a role that is neither owner
nor superuser, so it cannot disable the append-only triggers (ALTER TABLE needs the
owner), cannot set ``session_replication_role`` (superuser only), and has no UPDATE,
DELETE or TRUNCATE on any append-only table: the journal is out of its reach twice over.
It cannot create objects either: PUBLIC loses CREATE on schema ``public`` (PostgreSQL
before 15 gave it) and TEMPORARY on the database.

``privileged_role`` says when a connection is more than that (a superuser, or a member of
the role owning the database, the schema or a table): the service commands refuse it.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from ledger.store import schema

# table -> privileges beyond SELECT and INSERT, and why the service needs them
EXTRA: dict[str, tuple[str, ...]] = {
    "orders": ("UPDATE", "DELETE"),  # refunds, completion, settlement (rows replaced)
    "payouts": ("UPDATE",),  # settled / failed
    "parked": ("UPDATE", "DELETE"),  # released events leave; rows are read FOR UPDATE
    "chain_heads": ("UPDATE",),  # the head moves forward (and is locked FOR UPDATE)
    "consumer_offsets": ("UPDATE",),  # checkpoints move forward (compare-and-set)
    "account_balances": ("UPDATE",),  # running sums kept with the postings (SPEC §3 bounds)
    # views (projectors/): folded in place; `ledger rebuild` writes a new generation and
    # deletes the old one (no DDL); derived data that `ledger check` recomputes
    **dict.fromkeys(
        (
            "view_projectors",
            "view_checkpoints",
            "view_balances",
            "view_order_levels",
            "view_fee_totals",
        ),
        ("UPDATE", "DELETE"),
    ),
}
READ_ONLY = ("alembic_version",)


def grant_statements(role: str) -> list[str]:
    """Idempotent: every privilege of ``role`` on the ledger's objects is revoked first."""
    quoted = _quote(role)
    names = [*schema.metadata.tables, *READ_ONLY]
    statements = [
        f"REVOKE ALL ON TABLE {', '.join(names)} FROM {quoted}",
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
    ]
    for name in READ_ONLY:
        statements.append(f"GRANT SELECT ON TABLE {name} TO {quoted}")
    for name in schema.metadata.tables:
        privileges = ", ".join(("SELECT", "INSERT", *EXTRA.get(name, ())))
        statements.append(f"GRANT {privileges} ON TABLE {name} TO {quoted}")
    from ledger.store.postgres import SEQUENCES

    for sequence in SEQUENCES.values():  # nextval only (setval needs UPDATE)
        statements.append(f"GRANT USAGE ON SEQUENCE {sequence} TO {quoted}")
    return statements


def database_statements(database: str, role: str) -> list[str]:
    """Database-wide: ``role`` may connect; nobody but the owner creates objects."""
    quoted, db = _quote(role), _quote(database)
    return [
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {db} TO {quoted}",
    ]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grant_service(conn: Connection, role: str) -> None:
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    for statement in [*database_statements(database, role), *grant_statements(role)]:
        conn.execute(text(statement))


def privileged_role(conn: Connection) -> str | None:
    """Why the connected PostgreSQL role could change the schema or the journal's
    protection (e.g. "ledger_owner, which owns the database"); None for a least-privileged
    role.
    Membership counts: a member may SET ROLE to the owner."""
    row = conn.execute(
        text(
            """
            SELECT current_user AS me, r.rolsuper, r.rolcreaterole,
                   pg_has_role(current_user, (SELECT datdba FROM pg_database
                                              WHERE datname = current_database()), 'MEMBER')
                       AS database,
                   COALESCE((SELECT pg_has_role(current_user, nspowner, 'MEMBER')
                             FROM pg_namespace WHERE nspname = s.name), false) AS schema,
                   EXISTS (SELECT 1 FROM pg_class c
                           JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = s.name
                             AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS tables
            FROM pg_roles r, (SELECT COALESCE(current_schema(), 'public') AS name) s
            WHERE r.rolname = current_user
            """
        )
    ).one()
    why = [
        what
        for what, flag in (
            ("is a superuser", row.rolsuper),
            ("may create roles", row.rolcreaterole),
            ("owns the database", row.database),
            ("owns the schema", row.schema),
            ("owns ledger tables", row.tables),
        )
        if flag
    ]
    if not why:
        return None
    listed = why[0] if len(why) == 1 else f"{', '.join(why[:-1])} and {why[-1]}"
    return f"{row.me}, which {listed}"
