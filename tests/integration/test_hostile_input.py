"""Against real databases: bounds that keep every figure storable and
readable, piped input, one-line CLI errors, dead letters stored once, strict input.

Each test names the issue's item it pins. The CLI runs in-process (CliRunner) unless the
point is the operating system's part: a real pipe, non-UTF-8 bytes in argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text

from ledger.cli import main
from ledger.domain.entries import JournalEntry, Posting
from ledger.domain.events import Event
from ledger.domain.state import BALANCE_BOUND
from ledger.domain.validation import MAX_AMOUNT
from ledger.jsonform import event_to_json
from ledger.service import LedgerService, Undecodable
from ledger.store import tables as t
from ledger.store.opening import open_store
from tests.support import reads as queries
from tests.support.roles import as_owner
from tests.support.streams import DAY, T0, Ev

AT = T0 + DAY
LEDGER = str(Path(sys.executable).with_name("ledger"))


def cli(*args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, env=env)


def one_line_error(result: Result, exit_code: int | None = None) -> str:
    """The result is a clean failure: non-zero exit, no traceback, one line on stderr."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code != 0 and (exit_code is None or result.exit_code == exit_code)
    # ingest's progress bar (just its label when stderr is not a terminal) may precede it
    lines = [x for x in result.stderr.strip().splitlines() if not x.startswith("ingesting ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def write_lines(path: Path, events: Iterable[Event], extra: Sequence[str] = ()) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event_to_json(event)) + "\n")
        for line in extra:
            fh.write(line + "\n")
    return path


def setup(ev: Ev, shares: tuple[int, int, int] = (5000, 3000, 2000), fee: int = 800) -> list:
    return [ev.plan(shares=shares, fee=fee), ev.enroll("S1"), ev.click("C1", "S1", "B1", AT - 1)]


def dead_letters(db: str) -> list[dict]:
    return json.loads(cli("dead-letters", "--db", db, "--json").output)


def balances(db: str) -> dict[str, dict]:
    result = cli("balances", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    return {row["sharer_id"]: row for row in json.loads(result.output)}


def verified(db: str) -> None:
    result = cli("verify", "--db", db)
    assert result.exit_code == 0 and result.output.startswith("OK"), result.output


# --- items 1 and 2: bounds ----------------------------------------------------------------


def test_an_order_past_10_15_is_a_dead_letter_and_the_lines_behind_it_apply(
    db_url: str, tmp_path: Path
) -> None:
    """Item 1: 10,000 lines at the per-line maximum, rate 10000 bps, used to overflow the
    postings and stop `ledger ingest` for good, at any batch size."""
    ev = Ev()
    huge = ev.order(
        "O-huge",
        "B1",
        AT,
        [(f"L{n}", MAX_AMOUNT, 10_000) for n in range(10_000)],
        event_id="e-huge",
    )
    path = write_lines(tmp_path / "in.jsonl", [*setup(ev), huge, ev.order("O2", "B1", AT + 1)])
    result = cli("ingest", str(path), "--db", db_url, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "4 applied, 1 rejected" in result.output
    (dead,) = dead_letters(db_url)
    assert (dead["event_id"], dead["reason"]) == ("e-huge", "invalid_value")
    assert "total" in dead["message"]
    assert balances(db_url)["S1"]["pending"] == 460
    verified(db_url)


def test_a_balance_past_2_62_is_a_dead_letter_and_every_read_still_works(
    db_url: str, tmp_path: Path
) -> None:
    """Item 2: in-range orders whose sum on one account leaves ±2^62. With the whole
    commission to S1 and no fee, each order of 10^15 charges M1 10^15 and pays S1 as much:
    4,611 fit under 2^62, the 4,612th does not. A later small order still applies."""
    ev = Ev()
    fits = BALANCE_BOUND // MAX_AMOUNT
    orders = [ev.order(f"O{n}", "B1", AT, [("L1", MAX_AMOUNT, 10_000)]) for n in range(fits)]
    over = ev.order("O-over", "B1", AT, [("L1", MAX_AMOUNT, 10_000)], event_id="e-over")
    small = ev.order("O-small", "B1", AT, [("L1", 10_000, None)], merchant="M2")
    path = write_lines(
        tmp_path / "in.jsonl", [*setup(ev, shares=(10_000, 0, 0), fee=0), *orders, over, small]
    )
    result = cli("ingest", str(path), "--db", db_url)
    assert result.exit_code == 0, result.output
    assert f"{fits + 4} applied, 1 rejected" in result.output
    (dead,) = dead_letters(db_url)
    assert (dead["event_id"], dead["reason"]) == ("e-over", "balance_out_of_range")
    assert "merchant:M1:charges" in dead["message"]

    assert balances(db_url)["S1"]["pending"] == fits * MAX_AMOUNT + 1000
    store = open_store(db_url)
    try:
        totals = queries.account_balances(store)
        assert totals[("merchant:M1:charges", "CNY")] == -fits * MAX_AMOUNT
        assert all(abs(v) <= BALANCE_BOUND for v in totals.values())
        assert _kept_balances(store) == totals  # the engine's running sums agree
    finally:
        store.dispose()
    verified(db_url)


def _kept_balances(store) -> dict[tuple[str, str], int]:  # type: ignore[no-untyped-def]
    b = t.account_balances
    with store.read() as conn:
        rows = conn.execute(
            select(b.c.account, b.c.currency, func.sum(b.c.balance)).group_by(
                b.c.account, b.c.currency
            )
        )
        return {(a, c): int(v) for a, c, v in rows if int(v) != 0}


def test_sums_of_postings_read_even_when_money_through_an_account_passes_int64(
    db_url: str,
) -> None:
    """Balances stay in bounds, but 2 · 9,300 postings of ±10^15 move 9.3·10^18 through
    S1's available, the positive ones earliest in time: SQLite's SUM, adding in that
    order, used to fail with "integer overflow"."""
    store = open_store(db_url)
    pairs = 9_300
    entries = [  # in by +10^15 … then out by −10^15 …, later in time too: any order overflows
        JournalEntry(
            f"e{sign}{n}",
            0,
            "settlement",
            "test",
            at,
            (
                Posting("sharer:S1:available", "CNY", sign * MAX_AMOUNT),
                Posting("sharer:S1:pending", "CNY", -sign * MAX_AMOUNT),
            ),
        )
        for sign, start in ((1, 0), (-1, 10**9))
        for n, at in enumerate(range(start, start + pairs))
    ]
    try:
        with store.begin() as conn:
            store.append_entries(conn, "c", entries, 1)
        assert queries.sharer_balances(store) == [queries.SharerBalance("S1", "CNY")]
        early = queries.sharer_balances(store, as_of=pairs)  # only the positive ones
        assert early[0].available == pairs * MAX_AMOUNT
        assert queries.account_balances(store) == {}
    finally:
        store.dispose()


def test_a_record_the_database_refuses_becomes_an_unstorable_dead_letter(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence: with the bounds switched off, an order whose postings
    leave int64 reaches the database, which refuses the batch; the batch is split until
    the one record is found, and everything else applies."""
    monkeypatch.setattr("ledger.domain.validation.MAX_AMOUNT", 2**80)
    monkeypatch.setattr("ledger.domain.state.BALANCE_BOUND", 2**80)
    ev = Ev()
    lines = [(f"L{n}", 2**62, 10_000) for n in range(4)]  # each an Avro long; M1 charged 2^63.1
    huge = ev.order("O-huge", "B1", AT, lines, event_id="e-huge")
    path = write_lines(
        tmp_path / "in.jsonl",
        [*setup(ev), ev.order("O1", "B1", AT), huge, ev.order("O2", "B1", AT)],
    )
    result = cli("ingest", str(path), "--db", db_url, "--batch-size", "6")
    assert result.exit_code == 0, result.output
    assert "5 applied, 0 rejected" in result.output and "1 unreadable" in result.output
    (dead,) = dead_letters(db_url)
    assert (dead["event_id"], dead["reason"]) == ("e-huge", "unstorable")
    assert balances(db_url)["S1"]["pending"] == 2 * 460
    verified(db_url)


# --- item 4: piped input -----------------------------------------------------------------------


def test_piped_input_is_ingested_through_dev_stdin_and_dash(tmp_path: Path) -> None:
    ev = Ev()
    path = write_lines(tmp_path / "in.jsonl", [*setup(ev), ev.order("O1", "B1", AT)])
    for n, target in enumerate(("/dev/stdin", "-")):
        db = f"sqlite:///{tmp_path / f'{n}.sqlite'}"
        with path.open("rb") as data:
            cat = subprocess.Popen(["cat"], stdin=data, stdout=subprocess.PIPE)
            done = subprocess.run(
                [LEDGER, "ingest", target, "--db", db],
                stdin=cat.stdout,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            cat.wait(timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("4 events: 4 applied"), done.stdout
        assert balances(db)["S1"]["pending"] == 460


def test_a_regular_file_still_gets_a_progress_bar_to_its_last_byte(tmp_path: Path) -> None:
    from ledger.ingest_file import ingest_stream

    ev = Ev()
    path = write_lines(
        tmp_path / "in.jsonl",
        [*setup(ev), *(ev.order(f"O{n}", "B1", AT) for n in range(25))],
        ["", "{"],
    )
    steps: list[int] = []
    store = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}")
    try:
        with path.open("rb") as fh:
            summary = ingest_stream(
                LedgerService(store), fh, path.name, batch_size=10, progress=steps.append
            )
    finally:
        store.dispose()
    assert sum(steps) == path.stat().st_size and len(steps) == 3  # 10 + 10 + 9 lines
    assert summary.lines == 29 and summary.report.applied == 28
    # counts only: what the summary holds does not grow with the file's dead letters
    assert summary.report.undecodable == 1 and summary.report.dead_letters == []
    result = cli("ingest", str(path), "--db", f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert "ingesting in.jsonl" in result.stderr


# --- item 8: one-line errors -------------------------------------------------------------------


def test_a_file_of_random_bytes_as_the_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(8192))
    for command in ("balances", "verify", "dead-letters"):
        line = one_line_error(cli(command, "--db", f"sqlite:///{junk}"), 1)
        assert "not a database" in line and "SQLite" in line  # a hint that fits the backend
        assert "postgres" not in line.lower()


@pytest.mark.parametrize(
    "args",
    [
        ["balances", "--as-of", "99999999999999999999"],
        ["balances", "--as-of", "²"],
        ["balances", "--as-of", ""],
        ["balances", "--as-of", "2026-01-01T00:00:00Z\x00"],
        ["dead-letters", "--limit", "9223372036854775808"],
        ["parked", "--limit", "-1"],
        ["ingest", "-", "--batch-size", "0"],
        ["ingest", "-", "--chain", "a\nb"],
        ["balances", "--sharer", "S\x00"],
        ["verify", "--expect-head", "not-a-hash"],
        ["balances", "--db", ""],
    ],
    ids=[
        "as-of-huge",
        "as-of-superscript",
        "as-of-empty",
        "as-of-nul",
        "limit-2^63",
        "limit-negative",
        "batch-size-0",
        "chain-newline",
        "sharer-nul",
        "expect-head",
        "db-empty",
    ],
)
def test_bad_arguments_are_one_line_errors(args: list[str], tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'l.sqlite'}"] if "--db" not in args else []
    line = one_line_error(cli(*args, *db, input=b""), 2)
    assert "Invalid value" in line


def test_a_missing_config_file_is_one_line_even_with_help(tmp_path: Path) -> None:
    env = {"LEDGER_CONFIG": str(tmp_path / "missing.env")}
    for args in (["balances", "--help"], ["verify"]):
        line = one_line_error(cli(*args, env=env), 1)
        assert "missing.env" in line and "does not exist" in line
    bad = tmp_path / "bad.env"
    bad.write_bytes(b"LOG_LEVEL=\xff\n")
    assert "cannot read" in one_line_error(cli("verify", env={"LEDGER_CONFIG": str(bad)}))
    assert "LEDGER_LOG_LEVEL" in one_line_error(cli("verify", env={"LEDGER_LOG_LEVEL": "loud"}))


def test_a_non_utf8_file_name_is_ingested_and_a_non_utf8_chain_refused(tmp_path: Path) -> None:
    """Real argv bytes, through a subprocess: Python hands them over as lone surrogates,
    which no database accepts in a dead letter's source or a chain name."""
    ev = Ev()
    folder = os.fsencode(tmp_path)
    name = folder + b"/ev\xff\xfe.jsonl"
    with open(name, "w") as fh:
        fh.write(json.dumps(event_to_json(ev.enroll("S1"))) + "\n{\n")
    db = f"sqlite:///{tmp_path / 'l.sqlite'}"
    done = subprocess.run(
        [LEDGER, "ingest", name, "--db", db], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"2 events: 1 applied")
    (dead,) = dead_letters(db)
    assert dead["source"] == "ev\\xff\\xfe.jsonl:2"
    refused = subprocess.run(
        [LEDGER, "ingest", name, "--db", db, "--chain", b"c\xff"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.count(b"\n") == 1 and b"--chain" in refused.stderr
    assert b"Traceback" not in refused.stderr


def test_an_unknown_schema_revision_in_the_database(db_url: str) -> None:
    store = open_store(as_owner(db_url))  # the revision is the owner's to write
    with store.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    store.dispose()
    line = one_line_error(cli("balances", "--db", db_url), 1)
    assert "ffff" in line and "newer version" in line


def test_the_postgres_hint_is_given_for_postgres_only(tmp_path: Path) -> None:
    line = one_line_error(
        cli("verify", "--db", "postgresql+psycopg2://nobody:x@127.0.0.1:1/none"), 1
    )
    assert "server up" in line and "SQLite" not in line


# --- item 9: in-memory SQLite ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"]
)
def test_an_in_memory_sqlite_database_is_refused(url: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [Ev().enroll("S1")])
    assert "in-memory" in one_line_error(cli("ingest", str(path), "--db", url), 1)
    assert "in-memory" in one_line_error(cli("balances", env={"LEDGER_DB_URL": url}), 1)


# --- item 10: dead letters are idempotent ------------------------------------------------------


def test_ingesting_a_file_again_adds_no_dead_letters(db_url: str, tmp_path: Path) -> None:
    ev = Ev()
    no_id = json.dumps({**event_to_json(ev.enroll("S9")), "event_id": ""})
    bad_id = json.dumps({**event_to_json(ev.enroll("S8")), "event_id": "x\u0000y"})
    path = write_lines(
        tmp_path / "in.jsonl",
        [ev.plan(), ev.plan(event_id="e-dup-plan")],
        [no_id, bad_id, "not json", no_id],
    )
    first = cli("ingest", str(path), "--db", db_url)
    assert "1 applied, 4 rejected" in first.output and "1 unreadable" in first.output
    assert len(dead_letters(db_url)) == 5  # the two equal lines are different lines
    for _ in range(2):
        again = cli("ingest", str(path), "--db", db_url)
        assert "0 applied, 0 rejected" in again.output, again.output
        assert "6 duplicates, 0 unreadable" in again.output
        assert len(dead_letters(db_url)) == 5


def test_a_kafka_record_redelivered_is_one_dead_letter(db_url: str) -> None:
    """A record's source is topic/partition@offset: the same offset again is the same
    record; the same bytes at another offset are another record."""
    store = open_store(db_url)
    service = LedgerService(store)

    def record(offset: int) -> Undecodable:
        return Undecodable(
            f"ledger.orders/0@{offset}",
            "bad_marker",
            "expected c301",
            "00ff",
            position=("ledger.orders", 0, offset),
        )

    topic = [("ledger.orders", 0)]
    try:
        first = service.ingest_isolating(
            [record(5), record(6)], group="g", starts=service.claim("g", topic)
        )
        # the topic replayed by another group (an offset is applied once per group)
        again = service.ingest_isolating([record(5)], group="g2", starts=service.claim("g2", topic))
        assert (first.undecodable, again.undecodable, again.duplicates) == (2, 0, 1)
        assert again.dead_letters == [] and again.undecodable_reasons == {}
        assert [d["source"] for d in queries.dead_letters(store)] == [
            "ledger.orders/0@5",
            "ledger.orders/0@6",
        ]
    finally:
        store.dispose()


# --- item 11: a settlement run ahead of its time ----------------------------------------------


def test_a_run_with_as_of_in_the_future_releases_nothing(db_url: str, tmp_path: Path) -> None:
    ev = Ev()
    done, due = AT + DAY, AT + 8 * DAY  # completed, then frozen 7 days
    events = [
        *setup(ev),
        ev.order("O1", "B1", AT),
        ev.complete("O1", "B1", done),
        ev.run("RUN1", due, at=due - 1, event_id="e-early"),
    ]
    path = write_lines(tmp_path / "in.jsonl", events)
    assert "5 applied, 1 rejected" in cli("ingest", str(path), "--db", db_url).output
    (dead,) = dead_letters(db_url)
    assert (dead["event_id"], dead["reason"]) == ("e-early", "as_of_in_future")
    assert (balances(db_url)["S1"]["pending"], balances(db_url)["S1"]["available"]) == (460, 0)
    on_time = write_lines(tmp_path / "later.jsonl", [ev.run("RUN1", due, at=due)])
    assert "1 applied" in cli("ingest", str(on_time), "--db", db_url).output
    assert balances(db_url)["S1"]["available"] == 460


# --- item 12: lenient parsing ------------------------------------------------------------------


def test_a_utf16_file_is_refused_before_anything_is_ingested(db_url: str, tmp_path: Path) -> None:
    ev = Ev()
    text_lines = "".join(json.dumps(event_to_json(e)) + "\n" for e in setup(ev))
    with_bom = tmp_path / "bom.jsonl"
    with_bom.write_bytes(text_lines.encode("utf-16"))
    line = one_line_error(cli("ingest", str(with_bom), "--db", db_url), 1)
    assert "UTF-16" in line and "UTF-8" in line
    assert dead_letters(db_url) == [] and balances(db_url) == {}

    no_bom = tmp_path / "no-bom.jsonl"
    no_bom.write_bytes(text_lines.encode("utf-16-le"))
    result = cli("ingest", str(no_bom), "--db", db_url)
    # split at each 0A byte: 3 lines of UTF-16 and the lone 00 after the last 0A
    assert "none of the 4 lines" in one_line_error(result, 1)
    assert "0 applied" in result.stdout
    assert {d["reason"] for d in dead_letters(db_url)} == {"malformed_json"}


def test_ingest_fails_when_no_line_could_be_read_also_the_second_time(
    db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"\x00\x01\n{]\n\xff\xfe\xfd\n")
    for _ in range(2):
        assert "none of the 3 lines" in one_line_error(cli("ingest", str(path), "--db", db_url))
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n\n")
    assert cli("ingest", str(empty), "--db", db_url).exit_code == 0  # nothing to read is no error


def test_times_before_1970_go_in_and_come_out(db_url: str, tmp_path: Path) -> None:
    ev = Ev()
    early = -DAY  # 1969-12-31
    events = [
        ev.plan(effective_from=early - DAY),
        ev.enroll("S1", at=early),
        ev.click("C1", "S1", "B1", early),
        ev.order("O1", "B1", early + 1),
    ]
    path = write_lines(tmp_path / "in.jsonl", events)
    assert "4 applied" in cli("ingest", str(path), "--db", db_url).output
    before = cli("balances", "--db", db_url, "--json", "--as-of", "1969-12-31T00:00:00.000Z")
    assert json.loads(before.output) == []
    after = cli("balances", "--db", db_url, "--json", "--as-of", str(early + 1))
    assert json.loads(after.output)[0]["pending"] == 460
    parked = cli("parked", "--db", db_url)
    assert parked.exit_code == 0


def test_an_over_long_line_is_a_dead_letter_and_the_next_line_applies(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.ingest_file.MAX_LINE_BYTES", 4096)
    ev = Ev()
    long_producer = json.dumps({**event_to_json(ev.enroll("S2")), "producer": "p" * 20_000})
    path = write_lines(tmp_path / "in.jsonl", [ev.enroll("S1")], [long_producer])
    with path.open("a") as fh:
        fh.write(json.dumps(event_to_json(ev.enroll("S3"))) + "\n")
    result = cli("ingest", str(path), "--db", db_url)
    assert result.exit_code == 0 and "2 applied" in result.output, result.output
    (dead,) = dead_letters(db_url)
    assert dead["reason"] == "line_too_long" and dead["source"] == "in.jsonl:2"
    assert len(dead["payload"]) <= 1000


# --- beyond the list ---------------------------------------------------------------------------


def test_dead_letters_never_send_terminal_escapes(db_url: str, tmp_path: Path) -> None:
    """A field name of the attacker's choosing ends up in the dead letter's message."""
    evil = json.dumps({**event_to_json(Ev().enroll("S1")), "\x1b]0;owned\x07\u202e": 1})
    path = write_lines(tmp_path / "in.jsonl", [], [evil])
    cli("ingest", str(path), "--db", db_url)
    shown = cli("dead-letters", "--db", db_url)
    assert shown.exit_code == 0 and "invalid_field" in shown.output
    assert "\x1b" not in shown.output and "\u202e" not in shown.output
    assert "\\x1b]0;owned\\x07\\u202e" in shown.output


def test_a_config_file_that_never_ends_is_refused() -> None:
    line = one_line_error(cli("verify", env={"LEDGER_CONFIG": "/dev/zero"}), 1)
    assert "larger than" in line


def test_the_demo_does_not_delete_a_ledger_named_by_mistake(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    ledger.write_bytes(b"precious")
    assert "--overwrite" in one_line_error(cli("demo", "--db", f"sqlite:///{ledger}"), 1)
    assert ledger.read_bytes() == b"precious"


def test_a_dead_letter_message_quoting_a_huge_value_is_cut(db_url: str, tmp_path: Path) -> None:
    obj = {**event_to_json(Ev().order("O1", "B1", AT)), "currency": "X" * 100_000}
    path = write_lines(tmp_path / "in.jsonl", [], [json.dumps(obj)])
    cli("ingest", str(path), "--db", db_url)
    (dead,) = dead_letters(db_url)
    assert dead["reason"] == "invalid_value" and len(dead["message"]) == 2000
    assert json.loads(dead["payload"])["currency"] == "X" * 100_000  # the record is whole


def test_revision_0003_fills_the_balances_of_a_ledger_written_before_it(
    db_url: str, tmp_path: Path
) -> None:
    from alembic import command

    from ledger.store.opening import alembic_config, run_migrations

    ev = Ev()
    events = [
        *setup(ev),
        *(ev.order(f"O{n}", "B1", AT) for n in range(5)),
        ev.refund("R1", "O1", "B1", [("L1", 4000)], AT + 1),
    ]
    path = write_lines(tmp_path / "in.jsonl", events)
    assert "9 applied" in cli("ingest", str(path), "--db", db_url).output
    store = open_store(as_owner(db_url))  # migrations are the owner's
    try:
        config = alembic_config()
        with store.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        run_migrations(store)
        assert _kept_balances(store) == queries.account_balances(store)
        assert _kept_balances(store)[("sharer:S1:pending", "CNY")] == 5 * 460 - 184
    finally:
        store.dispose()
