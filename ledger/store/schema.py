"""The whole schema: the ledger's tables (``tables``) and the projectors' view tables
(``view_tables``) on one metadata. Whatever must see every table (migrations, grants,
"is this database empty") reads ``schema.metadata``; the two modules import nothing of
each other but the metadata they share (view_tables from tables)."""

from __future__ import annotations

from ledger.store import tables, view_tables

metadata = tables.metadata
assert view_tables.view_projectors.metadata is metadata  # registered on import, above

__all__ = ["metadata"]
