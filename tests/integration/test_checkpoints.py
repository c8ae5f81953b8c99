"""Signed checkpoints: ``ledger keygen``, ``ledger checkpoint sign|verify``.

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

from ledger.chain.checkpoint import (
    CheckpointError,
    check_signature,
    keygen,
    load_private_key,
    parse,
)
from ledger.cli import main
from ledger.domain.events import OrderPlaced
from ledger.service import LedgerService, Received
from ledger.store import schema, tables
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
        for table in reversed(schema.metadata.sorted_tables):
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
    from ledger.chain.checkpoint import load_public_key

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
    assert [s.checkpoint.created_at for s in load_checkpoints(store)] == [1_000_000, 1_060_000]


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


def test_a_faithful_replay_verifies_against_the_sources_checkpoint(
    store: Store,
    db_url: str,
    keys: tuple[Path, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """export -> replay -> the source's signed checkpoint verifies on the copy: every chain
    is kept, link for link (the replay once moved entry-less events to a chain "replay")."""
    private, public = keys
    build_ledger(store, orders=20)
    LedgerService(store).ingest([Received(_new_click(), "clicks:1", "clicks-only")])
    signed = tmp_path / "checkpoint.json"
    assert (
        _run("checkpoint", "sign", "--db", db_url, "--key", private, "--out", signed).exit_code == 0
    )
    exported = tmp_path / "h.avro"
    assert _run("export", "--db", db_url, "--key", private, exported).exit_code == 0
    if db_url.startswith("postgresql"):  # a second database, on the same cluster
        target = request.getfixturevalue("pg_roles").owner
    else:
        target = f"sqlite:///{tmp_path / 'r.sqlite'}"
    replayed = _run("replay", exported, "--db", target, "--public-key", public)
    assert replayed.exit_code == 0, replayed.output
    result = _run("checkpoint", "verify", "--db", target, "--pub", public, signed)
    assert result.exit_code == 0 and "OK" in result.output, result.output


def test_a_chain_without_entries_is_no_false_alarm(
    store: Store, db_url: str, keys: tuple[Path, Path]
) -> None:
    """A chain holding only clicks (no journal entries) was signed as [0, GENESIS] and the
    untouched ledger then verified as TAMPERED."""
    private, public = keys
    build_ledger(store, orders=5)
    LedgerService(store).ingest([Received(_new_click(), "clicks:1", "clicks-only")])
    assert _run("checkpoint", "sign", "--db", db_url, "--key", private).exit_code == 0
    [stored] = load_checkpoints(store)
    assert stored.checkpoint is not None and "clicks-only" not in stored.checkpoint.chains()
    assert "clicks-only" in stored.checkpoint.event_chains()
    result = _run("checkpoint", "verify", "--db", db_url, "--pub", public)
    assert result.exit_code == 0 and "OK" in result.output, result.output


def test_an_older_checkpoint_with_an_empty_chain_still_verifies(
    store: Store, keys: tuple[Path, Path]
) -> None:
    from ledger.chain.checkpoint import load_public_key, sign
    from ledger.chain.journal import GENESIS
    from ledger.store.checkpoints import extension_problems, stored_heads

    build_ledger(store, orders=5)
    chains, event_chains = stored_heads(store)
    key = load_private_key(keys[0].read_bytes())
    checkpoint = sign(key, chains, event_chains, 5)
    body = {**checkpoint.body, "chains": {**checkpoint.body["chains"], "empty": [0, GENESIS]}}
    from ledger.chain.checkpoint import DOMAIN, Checkpoint, canonical

    old = Checkpoint(body, key.sign(DOMAIN + canonical(body)).hex())
    check_signature(old, load_public_key(keys[1].read_bytes()))
    assert extension_problems(store, old) == []


def test_malformed_stored_checkpoints_are_findings_and_the_rest_is_checked(
    store: Store, db_url: str, keys: tuple[Path, Path]
) -> None:
    """One malformed row (the service role may INSERT there) used to stop every check
    with a traceback, and --json printed no JSON."""
    private, public = keys
    build_ledger(store, orders=5)
    assert _run("checkpoint", "sign", "--db", db_url, "--key", private).exit_code == 0
    with store.begin() as conn:
        for n, body in enumerate(["{not json", "[" * 100_000, '{"v": 1}', "[]"]):
            conn.execute(
                tables.checkpoints.insert().values(
                    signature=f"bad{n}", created_at=n, key_id="x", body=body
                )
            )
    result = _run("checkpoint", "verify", "--db", db_url, "--pub", public, "--json")
    assert result.exit_code == 1
    outcomes = json.loads(result.stdout)
    assert [o["ok"] for o in outcomes] == [False, False, False, False, True]
    assert [o["id"] for o in outcomes[:4]] == ["bad0", "bad1", "bad2", "bad3"]
    assert all(o["problems"][0].startswith("malformed") for o in outcomes[:4])
    plain = _run("checkpoint", "verify", "--db", db_url, "--pub", public)
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    assert plain.stderr.count("TAMPERED: checkpoint bad") == 4


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"checkpoint": ' * 5_000, "\udcff", '{"checkpoint": {}, "signature": 1}'],
)
def test_a_malformed_checkpoint_file_is_a_finding(
    store: Store, db_url: str, keys: tuple[Path, Path], tmp_path: Path, text: str
) -> None:
    build_ledger(store, orders=2)
    bad = tmp_path / "bad.json"
    bad.write_text(text, errors="surrogateescape")
    result = _run("checkpoint", "verify", "--db", db_url, "--pub", keys[1], bad, "--json")
    assert result.exit_code == 1, result.output
    [outcome] = json.loads(result.stdout)
    assert outcome["id"] == str(bad) and outcome["ok"] is False
    assert outcome["problems"][0].startswith("malformed")


def test_many_stored_checkpoints_verify_the_ledger_once(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stored checkpoint used to re-verify the whole ledger: a consumer signing every
    minute made `checkpoint verify` cost thousands of full replays."""
    import ledger.commands.checkpoint as command
    import ledger.store.checkpoints as stored

    db = f"sqlite:///{tmp_path / 'l.sqlite'}"
    store = open_store(db)
    build_ledger(store, orders=3)
    signer = CheckpointSigner(
        store, load_private_key(keys[0].read_bytes()), 1, clock=iter(range(1, 99)).__next__
    )
    for _ in range(12):
        assert signer.maybe_sign() is not None
    store.dispose()
    calls = []
    for module in (command, stored):
        real = module.verify
        monkeypatch.setattr(
            module, "verify", lambda s, _real=real, **kw: calls.append(1) or _real(s, **kw)
        )
    result = _run("checkpoint", "verify", "--db", db, "--pub", keys[1])
    assert result.exit_code == 0 and "extends 12 signed checkpoint(s)" in result.output, (
        result.output
    )
    assert len(calls) == 1


def test_a_key_or_checkpoint_file_is_never_read_whole(
    store: Store, db_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """``--pub /dev/zero`` or a checkpoint of /dev/zero used to read until memory ran out."""
    build_ledger(store, orders=2)
    huge = tmp_path / "huge.pem"  # a private key must be a regular 0600 file: and bounded
    with huge.open("wb") as fh:
        fh.truncate(17 << 20)
    huge.chmod(0o600)
    for args, said in (
        (("checkpoint", "verify", "--db", db_url, "--pub", "/dev/zero"), "larger than"),
        (
            ("checkpoint", "verify", "--db", db_url, "--pub", keys[1], "/dev/zero", "--json"),
            "larger than",
        ),
        (("checkpoint", "sign", "--db", db_url, "--key", "/dev/zero"), "not a regular file"),
        (("checkpoint", "sign", "--db", db_url, "--key", huge), "not a key"),
        (("export", "--db", db_url, "--key", "/dev/zero", tmp_path / "h.avro"), "regular file"),
        (("export", "--db", db_url, "--key", huge, tmp_path / "h.avro"), "not a key"),
    ):
        result = _run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert said in result.output, (args, result.output)
