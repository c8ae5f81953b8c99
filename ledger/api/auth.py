"""API roles and tokens.

Tokens are random (``new_token``: 32 bytes from ``secrets``) and configured only as
SHA-256 hashes (``LEDGER_API_TOKENS=role:hex,role:hex``), so the config never holds a
usable secret. A plain hash suffices because the tokens are high-entropy: nothing to
brute-force as with a password. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

ROLES = ("publisher", "finance", "auditor")


class TokenConfigError(ValueError):
    """LEDGER_API_TOKENS is malformed; the message says where."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenBook:
    """The configured (role, token hash) pairs."""

    entries: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> TokenBook:
        """Parse ``role:sha256hex`` items separated by commas; raises TokenConfigError."""
        entries = []
        for item in (x.strip() for x in text.split(",")):
            if not item:
                continue
            role, _, digest = item.partition(":")
            if role not in ROLES:
                raise TokenConfigError(
                    f"LEDGER_API_TOKENS: unknown role {role!r} (roles: {', '.join(ROLES)})"
                )
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise TokenConfigError(
                    f"LEDGER_API_TOKENS: {role}: expected the token's sha256 as 64 lowercase hex "
                    "digits (ledger api-token prints it)"
                )
            entries.append((role, digest))
        return cls(tuple(entries))

    def role_of(self, token: str) -> str | None:
        """The role of ``token``, or None if no configured hash matches."""
        digest = hash_token(token)
        found = None
        for role, expected in self.entries:
            if hmac.compare_digest(digest, expected):  # no early exit: constant time
                found = role
        return found
