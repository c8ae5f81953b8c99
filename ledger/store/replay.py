"""Placeholder replaced below."""
from sqlalchemy import Connection


def check_replay(conn: Connection) -> tuple[str, object, str] | None:
    return None
