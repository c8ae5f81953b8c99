"""``ledger replay`` on malformed and hostile exports: one line naming what
is wrong and where, exit 1, never a traceback or a bare "Aborted!", memory bounded under
a deflate bomb, and nothing left behind (the replay succeeds whole or not at all), on
SQLite and PostgreSQL targets. Property tests over mutated bytes: test_export_properties.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from ledger.cli import main
from ledger.export.file import MAX_BLOCK_BYTES, Writer, _long, encode, read_header
from ledger.store import tables as t
from ledger.store.opening import open_store
from tests.support.exports import forge, open_export, write_export
from tests.support.exports_raw import block, bomb, deflate, put_together, take_apart
from tests.support.tamper import build_ledger

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    db = f"sqlite:///{root / 'source.sqlite'}"
    store = open_store(db)
    build_ledger(store, orders=5)
    store.dispose()
    out = root / "export.avro"
    assert CliRunner().invoke(main, ["export", "--db", db, str(out)]).exit_code == 0
    return out


def refused(path: Path, target: Path, *more: str) -> str:
    """Replay ``path`` into the SQLite file ``target``: must fail with one line and leave
    no file; returns that line."""
    result = CliRunner().invoke(main, ["replay", str(path), "--db", f"sqlite:///{target}", *more])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert not target.exists()
    return lines[0]


def _header_end(path: Path) -> int:
    with path.open("rb") as fh:
        read_header(fh)
        return fh.tell()


@pytest.mark.parametrize("cut", ["magic", "header", "after header", "mid block", "last byte"])
def test_a_truncated_export(source: Path, tmp_path: Path, cut: str) -> None:
    data = source.read_bytes()
    end = _header_end(source)
    at = {
        "magic": 2,
        "header": end - 5,
        "after header": end + 2,
        "mid block": (end + len(data)) // 2,
        "last byte": len(data) - 1,
    }[cut]
    truncated = tmp_path / "cut.avro"
    truncated.write_bytes(data[:at])
    line = refused(truncated, tmp_path / "t.sqlite")
    assert "truncated" in line or "not an Avro" in line or "inflate" in line, line


def test_blocks_that_claim_too_much(source: Path, tmp_path: Path) -> None:
    raw = take_apart(source)
    end = _header_end(source)
    header = source.read_bytes()[:end]
    for name, tail, expected in (
        ("count 2^62", _long(2**62) + _long(10) + bytes(10), "claims 4611686018427387904 records"),
        ("size 2^62", _long(1) + _long(2**62), "claims 4611686018427387904 bytes"),
        ("negative size", _long(1) + _long(-5), "claims -5 bytes"),
        ("bad long", b"\xff" * 11, "not a valid Avro long"),
        ("wrong sync", block(1, deflate(b"\x00"), bytes(16)), "sync marker"),
        (
            "bytes after the records",
            block(1, deflate(raw.blocks[0][1] + b"\x00\x00"), raw.sync),
            "records",
        ),
    ):
        bad = tmp_path / f"{name}.avro"
        bad.write_bytes(header + tail)
        line = refused(bad, tmp_path / "t.sqlite")
        assert expected in line, (name, line)


def test_input_that_is_not_an_export(source: Path, tmp_path: Path) -> None:
    not_avro = tmp_path / "x.avro"
    not_avro.write_bytes(b"not avro at all")
    assert "not an Avro object container file" in refused(not_avro, tmp_path / "t.sqlite")
    # an OCF, but not ours
    import fastavro

    other = tmp_path / "other.avro"
    with other.open("wb") as fh:
        fastavro.writer(fh, {"type": "record", "name": "X", "fields": []}, [{}])
    assert "not a ledger-export/2 file" in refused(other, tmp_path / "t.sqlite")


def _edited_metadata(source: Path, out: Path, name: str, value: str) -> None:
    forge(source, out, lambda r: r, metadata=lambda m: {**m, name: value})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ledger.chain_heads", "[" * 100_000, "nested 100000 deep"),
        ("ledger.chain_heads", "{not json", "not JSON"),
        ("ledger.chain_heads", '{"t": [1, "zz"]}', "is not [chain_seq, hash]"),
        ("ledger.head", "0" * 64, "ledger.head does not match"),
        ("ledger.dead_letters", '{"count": -1, "digest": ""}', "not {count, digest}"),
        ("ledger.format", "ledger-export/1", "not a ledger-export/2 file"),
        ("ledger.key_id", "abc", "the seal is unsigned"),
    ],
)
def test_malformed_metadata(
    source: Path, tmp_path: Path, name: str, value: str, expected: str
) -> None:
    bad = tmp_path / "m.avro"
    _edited_metadata(source, bad, name, value)
    line = refused(bad, tmp_path / "t.sqlite")
    assert expected in line, line


def _with_record(source: Path, out: Path, n: int, **changes: Any) -> None:
    forge(source, out, lambda r: [*r[:n], {**r[n], **changes}, *r[n + 1 :]])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"payload": '{"type": "order'}, "JSONDecodeError"),
        ({"payload": "[" * 50_000}, "RecursionError"),
        ({"payload": "{}"}, "KeyError"),
        ({"payload": '{"type": "no_such_type"}'}, "InvalidEvent"),
        ({"payload": '{"type": "plan_published", "plan_id": 5}'}, "InvalidEvent"),
        ({"payload": "[1, 2]"}, "the payload is not an event"),
        ({"chain": None}, "an event without chain"),
        ({"chain_seq": 0}, "chain, chain_seq or hash is malformed"),
        ({"outcome": "posted"}, "is not an event's"),
        ({"event_id": "other"}, "differ from its payload"),
        ({"kind": "seal"}, "follows the seal"),
    ],
)
def test_malformed_records_are_named(
    source: Path, tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    bad = tmp_path / "r.avro"
    _with_record(source, bad, 3, **changes)
    line = refused(bad, tmp_path / "t.sqlite")
    assert expected in line and "record 3 (block 0)" in line, line


def test_a_missing_seal_or_a_record_after_it(source: Path, tmp_path: Path) -> None:
    opened = open_export(source)
    no_seal = tmp_path / "no-seal.avro"
    with no_seal.open("wb") as fh:
        writer = Writer(fh, {k: v for k, v in opened.metadata.items() if k[:5] != "avro."})
        for record in opened.records:
            writer.write(record)
        writer.flush()
    assert "without its seal: truncated" in refused(no_seal, tmp_path / "t.sqlite")
    raw = take_apart(source)
    count, data = raw.blocks[-1]
    raw.blocks[-1] = (count + 1, data + encode(opened.records[0]))
    after = tmp_path / "after.avro"
    after.write_bytes(put_together(raw))
    assert "follows the seal" in refused(after, tmp_path / "t.sqlite")
    write_export(tmp_path / "x.avro", opened.metadata, opened.records)
    resealed = open_export(tmp_path / "x.avro")
    assert resealed.seal["payload"] == opened.seal["payload"]  # the seal is deterministic


def test_a_deflate_bomb_keeps_memory_bounded(source: Path, tmp_path: Path) -> None:
    """A 1 MB block that inflates to 1 GiB: refused at MAX_BLOCK_BYTES, and the peak RSS of
    the replaying process stays near that of a process that replays nothing."""
    end = _header_end(source)
    header, sync = source.read_bytes()[:end], take_apart(source).sync
    boom = tmp_path / "bomb.avro"
    compressed = bomb(1 << 30)
    assert len(compressed) < 2 << 20
    boom.write_bytes(header + block(1, compressed, sync))

    def peak_rss_kb(*args: str) -> tuple[int, str]:
        code = (
            "import resource, sys\n"
            "from ledger.cli import main\n"
            "try:\n"
            "    main(sys.argv[1:], standalone_mode=False)\n"
            "except Exception as exc:\n"
            "    print('ERROR', exc)\n"
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        run = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        last = run.stdout.strip().splitlines()[-1]
        assert last.startswith("RSS "), run.stdout + run.stderr
        return int(last.split()[1]), run.stdout

    target = tmp_path / "t.sqlite"
    base, _ = peak_rss_kb("replay", str(source), "--db", f"sqlite:///{tmp_path / 'ok.sqlite'}")
    peak, out = peak_rss_kb("replay", str(boom), "--db", f"sqlite:///{target}")
    assert f"inflates to more than {MAX_BLOCK_BYTES} bytes" in out, out
    assert peak - base < 3 * (MAX_BLOCK_BYTES >> 10), (peak, base)  # KiB: far below 1 GiB
    assert not target.exists()


def test_a_failed_replay_leaves_nothing_in_postgresql(
    source: Path, tmp_path: Path, fresh_pg_url: str
) -> None:
    """With --batch-size 1, every earlier batch used to stay committed; a non-OCF input
    left an empty ledger. Now the replay is one transaction: all or nothing."""
    late = tmp_path / "late.avro"
    forge(source, late, lambda r: [*r[:-1], {**r[-1], "source": "edited"}])
    runner = CliRunner()
    for path in (late, tmp_path / "nothing.avro"):
        if path.name == "nothing.avro":
            path.write_bytes(b"\x00" * 100)
        result = runner.invoke(
            main, ["replay", str(path), "--db", fresh_pg_url, "--batch-size", "1"]
        )
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        store = open_store(fresh_pg_url)
        with store.read() as conn:
            for table in t.metadata.sorted_tables:
                rows = conn.execute(select(func.count()).select_from(table)).scalar()
                assert rows == 0, (path.name, table.name, rows)
        store.dispose()
    # and the same database then takes the genuine export whole
    ok = runner.invoke(main, ["replay", str(source), "--db", fresh_pg_url, "--batch-size", "1"])
    assert ok.exit_code == 0, ok.output


def test_a_failed_replay_into_an_existing_empty_sqlite_file_leaves_it_empty(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "t.sqlite"
    open_store(f"sqlite:///{target}").dispose()  # an empty ledger someone made
    late = tmp_path / "late.avro"
    forge(source, late, lambda r: [*r[:-1], {**r[-1], "source": "edited"}])
    result = CliRunner().invoke(
        main, ["replay", str(late), "--db", f"sqlite:///{target}", "--batch-size", "1"]
    )
    assert result.exit_code == 1 and "DIFFERS" in result.output
    assert target.exists()  # not ours to remove
    store = open_store(f"sqlite:///{target}")
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.events)).scalar() == 0
    store.dispose()


def test_the_source_file_is_not_json_in_disguise(tmp_path: Path) -> None:
    target = tmp_path / "t.sqlite"
    fake = tmp_path / "fake.avro"
    fake.write_text(json.dumps({"Obj": 1}))
    refused(fake, target)


def test_a_seal_with_other_fields_set(source: Path, tmp_path: Path) -> None:
    from ledger.export.file import Digest, seal_body, seal_record

    opened = open_export(source)
    odd = tmp_path / "odd-seal.avro"
    with odd.open("wb") as fh:
        writer = Writer(fh, {k: v for k, v in opened.metadata.items() if k[:5] != "avro."})
        digest = Digest(writer.metadata)
        for record in opened.records:
            digest.record(writer.write(record))
        body = seal_body(digest.hexdigest(), len(opened.records))
        writer.write({**seal_record(body, None), "source": "anything"})
        writer.flush()
    assert "a seal leaves empty" in refused(odd, tmp_path / "t.sqlite")


def test_a_header_that_names_a_key_twice(source: Path, tmp_path: Path) -> None:
    from ledger.export.file import MAGIC, _bytes

    opened = open_export(source)
    entries = [*opened.metadata.items(), ("ledger.head", "0" * 64)]
    header = MAGIC + _long(len(entries))
    for key, value in entries:
        header += _bytes(key.encode()) + _bytes(value.encode())
    raw = take_apart(source)
    twice = tmp_path / "twice.avro"
    twice.write_bytes(header + _long(0) + raw.sync + put_together(raw)[len(raw.header) :])
    assert "names 'ledger.head' twice" in refused(twice, tmp_path / "t.sqlite")
