"""Exports an auditor can trust: the edits that used to replay with "heads
equal" are found by the unsigned replay (it compares every event-log link, chain head and
dead letter, not one head) and refused outright by a signed one (``--public-key``); a
forger who recomputes everything a file carries passes only where no key is checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ledger.chain.journal import ledger_head
from ledger.cli import main
from ledger.export.check import record_item
from ledger.export.write import export
from ledger.service import LedgerService
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.verify import verify
from tests.support.exports import forge, open_export, payload_of, with_payload, write_export
from tests.support.tamper import build_ledger

Records = list[dict[str, Any]]


def _run(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A source ledger, its signing keys, and its unsigned and signed exports."""
    root = tmp_path_factory.mktemp("trust")
    db = f"sqlite:///{root / 'source.sqlite'}"
    store = open_store(db)
    build_ledger(store)
    store.dispose()
    private, public = root / "k.pem", root / "k.pub"
    assert _run("keygen", "--private", private, "--public", public).exit_code == 0
    unsigned, signed = root / "unsigned.avro", root / "signed.avro"
    assert _run("export", "--db", db, unsigned).exit_code == 0
    done = _run("export", "--db", db, "--key", private, signed)
    assert done.exit_code == 0 and "signed by key" in done.output, done.output
    return {"root": root, "db": Path(db), "public": public, "unsigned": unsigned, "signed": signed}


def _drop_rejected(records: Records) -> Records:
    kept = [r for r in records if not (r["kind"] == "event" and r["outcome"] == "rejected")]
    assert len(kept) < len(records)
    return kept


def _forged_dead_letter(records: Records) -> Records:
    forged = dict(records[-1], kind="dead_letter", outcome="dead_letter", arrival=None)
    forged.update(event_id=None, event_type=None, occurred_at=None, chain=None, chain_seq=None)
    forged.update(hash=None, source="forged:1", reason="malformed_json", message="x")
    forged.update(payload='{"forged"', avro=None)
    return [*records, forged]


def _rewrite_sources(records: Records) -> Records:
    return [dict(r, source="elsewhere:0") for r in records]


def _duplicate_click_ahead(records: Records) -> Records:
    n = next(i for i, r in enumerate(records) if r["event_type"] == "click_recorded")
    original = records[n]
    forged = with_payload(original, {**payload_of(original), "sharer_id": "u-forger"})
    edited = [*records[:n], forged, *records[n:]]
    # arrival numbers renumbered so that they still increase, as a careful forger would
    return [dict(r, arrival=i) if r["kind"] == "event" else r for i, r in enumerate(edited)]


def _nine_times(records: Records) -> Records:
    n = next(
        i
        for i, r in enumerate(records)
        if r["event_type"] == "order_placed" and r["outcome"] == "applied"
    )
    payload = payload_of(records[n])
    payload["lines"] = [dict(line, amount=line["amount"] * 9) for line in payload["lines"]]
    return [*records[:n], with_payload(records[n], payload), *records[n + 1 :]]


def _journal_heads_of(records: Records, scratch: Path) -> dict[str, tuple[int, str]]:
    """What a forger computes: the journal heads the edited records give."""
    from ledger.export.file import Record

    store = open_store(f"sqlite:///{scratch}")
    LedgerService(store).ingest([record_item(Record(i, 0, r, b"")) for i, r in enumerate(records)])
    heads = verify(store).chains
    store.dispose()
    return heads


EDITS: dict[str, Callable[[Records], Records]] = {
    "rejected events dropped": _drop_rejected,
    "dead letter forged": _forged_dead_letter,
    "every source rewritten": _rewrite_sources,
    "forged duplicate click ahead of the original": _duplicate_click_ahead,
    "order amount x9": _nine_times,
}


def _forge(made: dict[str, Path], which: str, name: str, out: Path) -> None:
    edit = EDITS[name]
    if name != "order amount x9":
        forge(made[which], out, edit)
        return
    # the forger also recomputes the journal heads and ledger.head
    edited = edit(open_export(made[which]).records)
    heads = _journal_heads_of(edited, out.with_suffix(".scratch.sqlite"))

    def metadata(meta: dict[str, str]) -> dict[str, str]:
        meta["ledger.chain_heads"] = json.dumps({c: [s, h] for c, (s, h) in heads.items()})
        meta["ledger.head"] = ledger_head(heads)
        return meta

    forge(made[which], out, lambda _records: edited, metadata=metadata)


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_unsigned_export_does_not_replay(
    made: dict[str, Path], name: str, tmp_path: Path
) -> None:
    forged = tmp_path / "forged.avro"
    _forge(made, "unsigned", name, forged)
    target = tmp_path / "replayed.sqlite"
    result = _run("replay", forged, "--db", f"sqlite:///{target}", "--batch-size", 7)
    assert result.exit_code == 1, result.output
    assert "DIFFERS" in result.stderr and "nothing was kept" in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert not target.exists()  # a failed replay leaves nothing


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_signed_export_is_refused_with_the_public_key(
    made: dict[str, Path], name: str, tmp_path: Path
) -> None:
    forged = tmp_path / "forged.avro"
    _forge(made, "signed", name, forged)
    target = tmp_path / "replayed.sqlite"
    result = _run("replay", forged, "--db", f"sqlite:///{target}", "--public-key", made["public"])
    assert result.exit_code == 1
    assert "the signature does not verify" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not target.exists()


def test_the_untouched_exports_replay_and_say_what_they_prove(
    made: dict[str, Path], tmp_path: Path
) -> None:
    signed = _run(
        "replay",
        made["signed"],
        "--db",
        f"sqlite:///{tmp_path / 'a.sqlite'}",
        "--public-key",
        made["public"],
    )
    assert signed.exit_code == 0, signed.output
    assert "AUTHENTICATED: signed by key" in signed.output and "WARNING" not in signed.output
    unchecked = _run("replay", made["signed"], "--db", f"sqlite:///{tmp_path / 'b.sqlite'}")
    assert unchecked.exit_code == 0
    assert "WARNING" in unchecked.stderr and "NOT checked" in unchecked.stderr
    assert "AUTHENTICATED" not in unchecked.output
    unsigned = _run("replay", made["unsigned"], "--db", f"sqlite:///{tmp_path / 'c.sqlite'}")
    assert unsigned.exit_code == 0
    assert "WARNING: this export is not signed" in unsigned.stderr
    refused = _run(
        "replay",
        made["unsigned"],
        "--db",
        f"sqlite:///{tmp_path / 'd.sqlite'}",
        "--public-key",
        made["public"],
    )
    assert refused.exit_code == 1 and "not signed" in refused.output
    assert not (tmp_path / "d.sqlite").exists()


def test_a_stripped_or_foreign_signature_is_refused(made: dict[str, Path], tmp_path: Path) -> None:
    stripped = tmp_path / "stripped.avro"
    forge(made["signed"], stripped, lambda r: r, keep_signature=False)  # now "unsigned"
    result = _run(
        "replay", stripped, "--db", f"sqlite:///{tmp_path / 's'}", "--public-key", made["public"]
    )
    assert result.exit_code == 1 and "not signed" in result.output
    other_private, other_public = tmp_path / "o.pem", tmp_path / "o.pub"
    assert _run("keygen", "--private", other_private, "--public", other_public).exit_code == 0
    result = _run(
        "replay",
        made["signed"],
        "--db",
        f"sqlite:///{tmp_path / 'o'}",
        "--public-key",
        other_public,
    )
    assert result.exit_code == 1 and "signed by key" in result.output and "not by" in result.output


def test_a_consistent_forgery_passes_only_where_no_key_is_checked(
    made: dict[str, Path], tmp_path: Path
) -> None:
    """The limit of an unsigned export, as docs/security.md states it: a forger who
    recomputes every link, head and digest makes a file that agrees with itself."""
    edited = _nine_times(open_export(made["signed"]).records)
    scratch = open_store(f"sqlite:///{tmp_path / 'scratch.sqlite'}")
    from ledger.export.file import Record

    LedgerService(scratch).ingest([record_item(Record(i, 0, r, b"")) for i, r in enumerate(edited)])
    forged_export = tmp_path / "consistent.avro"
    export(scratch, forged_export)
    with scratch.read() as conn:
        sources = {r.event_id: r.source for r in conn.execute(select(t.events))}
    assert sources  # the forger's ledger is a real one
    scratch.dispose()
    # keep the original signature: the signer's key id, a seal that no longer fits
    signed_meta = open_export(made["signed"])
    opened = open_export(forged_export)
    forged_signed = tmp_path / "consistent-signed.avro"
    write_export(
        forged_signed,
        {**opened.metadata, "ledger.key_id": signed_meta.metadata["ledger.key_id"]},
        opened.records,
        signature=signed_meta.seal["signature"],
    )

    passes = _run("replay", forged_export, "--db", f"sqlite:///{tmp_path / 'p.sqlite'}")
    assert passes.exit_code == 0 and "WARNING: this export is not signed" in passes.stderr
    refused = _run(
        "replay",
        forged_signed,
        "--db",
        f"sqlite:///{tmp_path / 'r.sqlite'}",
        "--public-key",
        made["public"],
    )
    assert refused.exit_code == 1 and "the signature does not verify" in refused.output
