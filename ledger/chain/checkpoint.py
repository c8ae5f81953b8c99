"""Signed checkpoints: an Ed25519 signature over every chain head, so an auditor holding
only the public key can prove, offline, that the ledger in front of them extends the one
that was signed (pure: no SQL; the clock and the store are the caller's).

The hash chains make every altered row evident, except a consistent rewrite of a chain's
tail together with its head row (docs/journal.md). A checkpoint anchors the heads outside
the database: each signed ``(chain, chain_seq, hash)`` must still be the link at that
position, and the chain must still verify from genesis up to it.

Body (canonical JSON: sorted keys, no whitespace, ASCII)::

    {"v": 1, "created_at": ms, "key_id": hex16,
     "ledger_head": hex, "chains": {chain: [chain_seq, hash]},          # journal
     "events_head": hex, "event_chains": {chain: [chain_seq, hash]}}    # event log

Signed bytes: ``DOMAIN`` followed by the canonical body (the prefix keeps a checkpoint
signature from ever being valid for another message signed with the same key). File
form: ``{"checkpoint": body, "signature": hex}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.chain.eventlog import events_head
from ledger.chain.journal import GENESIS, ledger_head

DOMAIN = b"commission-ledger checkpoint v1\n"
VERSION = 1

Heads = Mapping[str, tuple[int, str]]


class CheckpointError(ValueError):
    """A key or checkpoint that cannot be used, or a signature that does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    body: dict[str, Any]
    signature: str  # hex

    @property
    def created_at(self) -> int:
        return int(self.body["created_at"])

    @property
    def key_id(self) -> str:
        return str(self.body["key_id"])

    def chains(self) -> dict[str, tuple[int, str]]:
        return {c: (s, h) for c, (s, h) in self.body["chains"].items()}

    def event_chains(self) -> dict[str, tuple[int, str]]:
        return {c: (s, h) for c, (s, h) in self.body["event_chains"].items()}

    def to_json(self) -> str:
        return json.dumps(
            {"checkpoint": self.body, "signature": self.signature},
            sort_keys=True,
            indent=2,
            ensure_ascii=True,
        )


# --- keys -----------------------------------------------------------------------------------


def keygen() -> tuple[bytes, bytes]:
    """A new key pair as (private PEM, PKCS8 unencrypted; public PEM, SubjectPublicKeyInfo)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private_pem, public_pem(private.public_key())


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"not an Ed25519 key: {type(key).__name__}")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"not an Ed25519 key: {type(key).__name__}")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of sha256 of the raw public key: names the signer."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# --- signing and checking -----------------------------------------------------------------------


def canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def sign(key: Ed25519PrivateKey, chains: Heads, event_chains: Heads, created_at: int) -> Checkpoint:
    """A checkpoint of these heads (journal and event log) at ``created_at`` (ms)."""
    # a chain with no link yet (events but no entries, or the reverse) has nothing to
    # anchor: signing it as [0, GENESIS] would name a row that never exists
    chains = {c: (s, h) for c, (s, h) in chains.items() if s > 0}
    events = {c: (s, h) for c, (s, h) in event_chains.items() if s > 0}
    body = {
        "v": VERSION,
        "created_at": created_at,
        "key_id": key_id(key.public_key()),
        "ledger_head": ledger_head(chains),
        "chains": {c: [s, h] for c, (s, h) in sorted(chains.items())},
        "events_head": events_head(events),
        "event_chains": {c: [s, h] for c, (s, h) in sorted(events.items())},
    }
    return Checkpoint(body, key.sign(DOMAIN + canonical(body)).hex())


def parse(text: str) -> Checkpoint:
    """A checkpoint from its file form; CheckpointError if it is not one."""
    try:
        outer = json.loads(text)
        body, signature = outer["checkpoint"], outer["signature"]
        _check_body(body)
        if type(signature) is not str:
            raise TypeError("signature is not text")
        bytes.fromhex(signature)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"not a checkpoint: {type(exc).__name__}: {str(exc)[:200]}") from exc
    return Checkpoint(body, signature)


def _check_body(body: Any) -> None:
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise ValueError(f"not a version-{VERSION} checkpoint body")
    if type(body.get("created_at")) is not int or type(body.get("key_id")) is not str:
        raise ValueError("created_at or key_id missing")
    if type(body.get("ledger_head")) is not str:
        raise ValueError("ledger_head missing")
    for name in ("chains", "event_chains"):
        links = body.get(name)
        if not isinstance(links, dict):
            raise TypeError(f"{name} is not an object")
        for chain, link in links.items():
            if not (
                isinstance(link, list)
                and len(link) == 2
                and type(link[0]) is int
                and type(link[1]) is str
            ):
                raise ValueError(f"{name}[{chain!r}] is not [chain_seq, hash]")


def check_signature(checkpoint: Checkpoint, key: Ed25519PublicKey) -> None:
    """CheckpointError unless ``key`` signed exactly this body."""
    if checkpoint.key_id != key_id(key):
        raise CheckpointError(f"signed by key {checkpoint.key_id}, not by {key_id(key)}")
    try:
        key.verify(bytes.fromhex(checkpoint.signature), DOMAIN + canonical(checkpoint.body))
    except (InvalidSignature, ValueError) as exc:
        raise CheckpointError(
            "the signature does not verify: the checkpoint was forged or altered"
        ) from exc
    if checkpoint.body["ledger_head"] != ledger_head(checkpoint.chains()):
        raise CheckpointError("the signed ledger head does not match the signed chains")


def missing_links(
    signed: Heads, link_at: Mapping[tuple[str, int], str | None], what: str
) -> list[str]:
    """What differs between the signed links and the links found at the same positions
    (``link_at[(chain, chain_seq)]``, None when there is no row there)."""
    problems = []
    for chain, (seq, digest) in sorted(signed.items()):
        if seq == 0 and digest == GENESIS:
            continue  # signed before a link existed (older checkpoints): anchors nothing
        found = link_at.get((chain, seq))
        if found is None:
            problems.append(f"{what} chain {chain} no longer has #{seq}: rows were removed")
        elif found != digest:
            problems.append(
                f"{what} chain {chain} #{seq} is {found}, signed {digest}: the chain was rewritten"
            )
    return problems
