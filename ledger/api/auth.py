"""API roles and tokens.

Tokens are random (``new_token``: 32 bytes from ``secrets``) and configured only as
SHA-256 hashes (``LEDGER_API_TOKENS=role:hex,role:hex``), so the config never holds a
usable secret. A sharer's token is bound to one sharer id, written after the hash,
percent-encoded (``sharer:hex:S%2C1``: ids may hold commas and colons); it reads only that
sharer's own data (``/api/v1/me``). A finance token may carry a name the same way
(``finance:hex:alice``): what a redrive records as its author (``finance:alice``; an
unnamed token is ``finance:`` and the first 8 hex of its hash). A plain hash suffices
because the tokens are high-entropy: nothing to brute-force as with a password.
Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ledger.domain.validation import valid_event_id

ROLES = ("publisher", "finance", "auditor")  # the platform's roles
SHARER = "sharer"  # a sharer's own token, bound to their id


class TokenConfigError(ValueError):
    """LEDGER_API_TOKENS is malformed; the message says where."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


NAMED = "finance"  # the role whose tokens may carry a name
MAX_NAME = 64


def token_item(role: str, token: str, sharer_id: str | None = None) -> str:
    """The LEDGER_API_TOKENS item for ``token``: its role and hash (and a sharer's id, or
    a finance token's name)."""
    item = f"{role}:{hash_token(token)}"
    return item if sharer_id is None else f"{item}:{quote(sharer_id, safe='')}"


def valid_name(name: object) -> bool:
    return isinstance(name, str) and valid_event_id(name) and len(name) <= MAX_NAME


def _after_hash(text: str) -> tuple[str, str]:
    """``HASH:SUFFIX`` as the hash and the percent-decoded suffix ("" when it is no UTF-8)."""
    digest, _, encoded = text.partition(":")
    try:
        return digest, unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        return digest, ""


@dataclass(frozen=True)
class TokenBook:
    """The configured (role, token hash) pairs, and the sharer each sharer hash is bound to."""

    entries: tuple[tuple[str, str], ...] = ()
    sharers: tuple[tuple[str, str], ...] = ()  # (token hash, sharer id)
    names: tuple[tuple[str, str], ...] = ()  # (token hash, finance token's name)

    @classmethod
    def parse(cls, text: str) -> TokenBook:
        """Parse ``role:sha256hex`` items separated by commas; raises TokenConfigError."""
        entries, sharers, names = [], [], []
        for item in (x.strip() for x in text.split(",")):
            if not item:
                continue
            role, _, digest = item.partition(":")
            if role not in (*ROLES, SHARER):
                raise TokenConfigError(
                    f"LEDGER_API_TOKENS: unknown role {role!r} "
                    f"(roles: {', '.join((*ROLES, SHARER))})"
                )
            if role == SHARER:
                digest, sharer_id = _after_hash(digest)
                if not valid_event_id(sharer_id):
                    raise TokenConfigError(
                        "LEDGER_API_TOKENS: a sharer token needs its sharer id after the hash, "
                        "percent-encoded (sharer:HASH:ID; `ledger api-token sharer --sharer ID` "
                        "prints it)"
                    )
                sharers.append((digest, sharer_id))
            elif role == NAMED and ":" in digest:
                digest, name = _after_hash(digest)
                if not valid_name(name):
                    raise TokenConfigError(
                        "LEDGER_API_TOKENS: a finance token's name (after the hash, "
                        f"percent-encoded) must be 1 to {MAX_NAME} printable characters"
                    )
                names.append((digest, name))
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise TokenConfigError(
                    f"LEDGER_API_TOKENS: {role}: expected the token's sha256 as 64 lowercase hex "
                    "digits (ledger api-token prints it)"
                )
            entries.append((role, digest))
        return cls(tuple(entries), tuple(sharers), tuple(names))

    def sharer_of(self, token: str) -> str | None:
        """The sharer a sharer token is bound to, or None (not a sharer's token)."""
        digest = hash_token(token)
        found = None
        for expected, sharer_id in self.sharers:
            if hmac.compare_digest(digest, expected):
                found = sharer_id
        return found

    def author_of(self, token: str) -> str:
        """Who a finance token is, as a redrive records it: ``finance:<its name>``, or
        ``finance:<first 8 hex of its hash>`` for an unnamed token."""
        digest = hash_token(token)
        found = digest[:8]
        for expected, name in self.names:
            if hmac.compare_digest(digest, expected):
                found = name
        return f"{NAMED}:{found}"

    def role_of(self, token: str) -> str | None:
        """The role of ``token``, or None if no configured hash matches."""
        digest = hash_token(token)
        found = None
        for role, expected in self.entries:
            if hmac.compare_digest(digest, expected):  # no early exit: constant time
                found = role
        return found
