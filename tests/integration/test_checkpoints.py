"""Signed checkpoints (issue 13): ``ledger keygen``, ``ledger checkpoint sign|verify``.

A history rewritten from some point on and re-hashed to the end (rows, heads, reference
state, all consistent) passes ``verify``; only a checkpoint signed before it, checked with
the public key alone, proves the ledger no longer extends what was signed."""

from __future__ import annotations

import dataclasses
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from ledger.checkpoint import CheckpointError, check_signature, keygen, load_private_key, parse
from ledger.cli import main
from ledger.domain.events import OrderPlaced
from ledger.service import LedgerService, Received
from ledger.store import tables
from ledger.store.checkpoints import CheckpointSigner, load_checkpoints
from ledger.store.opening import open_store
from ledger.store.store import Store
from ledger.store.verify import verify
from tests.support.tamper import build_ledger, triggers_lifted


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "signer.pem", tmp_path / "signer.pub"
    result = _run("keygen", "--private", private, "--public", public)
    assert result.exit_code == 0, result.output
    return private, public


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.dispose()


def test_keygen_writes_a_private_key_only_the_owner_reads(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    again = _run("keygen", "--private", private, "--public", public.with_suffix(".x"))
    assert again.exit_code == 1 and "not overwritten" in again.output


def _rewrite_history(store: Store, batch: list) -> None:  # type: ignore[type-arg]
    """Wipe every table (triggers lifted) and ingest ``batch`` again: a consistent ledger
    whose chains are re-hashed from the first changed event to the end."""
    with triggers_lifted(store) as conn:
        for table in reversed(tables.metadata.sorted_tables):
            conn.execute(delete(table))
    service = LedgerService(store, clock=lambda: 1_800_000_000_000)
    for start in range(0, len(batch), 50):
        service.ingest(batch[start : start + 50])


def test_a_rewritten_rehashed_history_passes_verify_but_not_the_checkpoint(
    store: Store,
    db_url: str,
    keys: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    private, public = keys
    batch = build_ledger(store)
    signed = tmp_path / "checkpoint.json"
    result = _run("checkpoint", "sign", "--db", db_url, "--key", private, "--out", signed)
    assert result.exit_code == 0, result.output
    ok = _run("checkpoint", "verify", "--db", db_url, "--pub", public, signed)
    assert ok.exit_code == 0 and "OK" in ok.output, ok.output

    # the attacker moves one order's commission: re-ingests history with its amount raised
    n, order = next(
        (n, item.event)
        for n, item in enumerate(batch)
        if isinstance(item, Received)
        and isinstance(item.event, OrderPlaced)
        and n > len(batch) // 2
    )
    line = dataclasses.replace(order.lines[0], amount=order.lines[0].amount + 500_000)
    forged = dataclasses.replace(order, lines=(line, *order.lines[1:]))
    _rewrite_history(
        store, [*batch[:n], dataclasses.replace(batch[n], event=forged), *batch[n + 1 :]]
    )

    assert verify(store).ok  # consistent from inside the database, replay included
    assert _run("verify", "--db", db_url).exit_code == 0
    caught = _run("checkpoint", "verify", "--db", db_url, "--pub", public, signed, "--json")
    assert caught.exit_code == 1
    [outcome] = json.loads(caught.stdout)
    assert outcome["ok"] is False
    assert any("chain t #" in p and "rewritten" in p for p in outcome["problems"])
    # the checkpoint stored in the database was wiped with the rest; the file remains


def test_a_later_ledger_still_extends_the_checkpoint(
    store: Store, db_url: str, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    batch = build_ledger(store, orders=20)
    assert _run("checkpoint", "sign", "--db", db_url, "--key", private).exit_code == 0
    more = [dataclasses.replace(item, source=f"{item.source}+again") for item in batch[:5]]
    LedgerService(store).ingest(more)  # duplicates: changes nothing …
    LedgerService(store).ingest([Received(_new_click(), "late:1", "t")])  # … this appends
    stored = _run("checkpoint", "verify", "--db", db_url, "--pub", public)
    assert stored.exit_code == 0 and "extends 1 signed checkpoint" in stored.output


def _new_click():  # type: ignore[no-untyped-def]
    from ledger.domain.events import ClickRecorded

    return ClickRecorded(
        "ev-late-click",
        1_900_000_000_000,
        "t",
        click_id="late",
        sharer_id="s-late",
        buyer_id="b-late",
        product_id="p",
    )


def test_forged_signatures_are_refused(store: Store, keys: tuple[Path, Path]) -> None:
    private, public = keys
    build_ledger(store, orders=5)
    signer = CheckpointSigner(
        store, load_private_key(private.read_bytes()), 60_000, clock=lambda: 1_800_000_000_000
    )
    real = signer.maybe_sign()
    assert real is not None
    from ledger.checkpoint import load_public_key

    key = load_public_key(public.read_bytes())
    check_signature(real, key)  # the genuine one verifies
    flipped = dataclasses.replace(
        real, signature=("0" if real.signature[0] != "0" else "1") + real.signature[1:]
    )
    rewound = dataclasses.replace(real, body={**real.body, "chains": {"t": [1, "0" * 64]}})
    other_private, _ = keygen()
    other = CheckpointSigner(store, load_private_key(other_private), 1, clock=lambda: 5)
    by_another = other.maybe_sign()
    assert by_another is not None
    impostor = dataclasses.replace(by_another, body={**by_another.body, "key_id": real.key_id})
    for forged, why in (
        (flipped, "does not verify"),
        (rewound, "does not verify"),
        (by_another, "signed by key"),
        (impostor, "does not verify"),
    ):
        with pytest.raises(CheckpointError, match=why):
            check_signature(parse(forged.to_json()), key)


def test_the_consumer_hook_signs_at_intervals(store: Store, keys: tuple[Path, Path]) -> None:
    now = [1_000_000]
    signer = CheckpointSigner(
        store, load_private_key(keys[0].read_bytes()), every_ms=60_000, clock=lambda: now[0]
    )
    signed = [signer.maybe_sign()]
    now[0] += 59_999
    signed.append(signer.maybe_sign())
    now[0] += 1
    signed.append(signer.maybe_sign())
    assert [s is not None for s in signed] == [True, False, True]
    assert [c.created_at for c in load_checkpoints(store)] == [1_000_000, 1_060_000]


def test_a_tampered_stored_checkpoint_is_reported(
    store: Store, db_url: str, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    build_ledger(store, orders=5)
    assert _run("checkpoint", "sign", "--db", db_url, "--key", private).exit_code == 0
    with triggers_lifted(store) as conn:
        body = conn.execute(tables.checkpoints.select()).mappings().one()["body"]
        conn.execute(
            tables.checkpoints.update().values(body=body.replace('"created_at":', '"created_at":1'))
        )
    result = _run("checkpoint", "verify", "--db", db_url, "--pub", public)
    assert result.exit_code == 1 and "does not verify" in result.output
