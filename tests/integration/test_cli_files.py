"""Files the CLI writes: nothing is overwritten, nothing is created by
mistake. Through the real CLI: ``export``, ``checkpoint sign --out``, ``keygen``, the
demo; the commands that need an existing ledger (``export``, ``checkpoint sign``,
``serve``, ``project``, ``rebuild``, ``check``) given a --db that holds none."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pty
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from ledger.cli import main
from ledger.files import binary_kind
from ledger.store.checkpoints import load_checkpoints
from ledger.store.opening import open_store
from tests.support.cli import LEDGER, one_line_error, run, run_process
from tests.support.tamper import build_ledger

AVRO_MAGIC = b"Obj\x01"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    """The names in ``directory``, without SQLite's -wal/-shm (a reader may leave them)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(("-wal", "-shm")))


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A small ledger in tmp_path/ledger.sqlite, closed (its WAL folded into the file)."""
    path = tmp_path / "ledger.sqlite"
    store = open_store(f"sqlite:///{path}")
    build_ledger(store, orders=10)
    store.dispose()
    return path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "signer.pem", tmp_path / "signer.pub"
    result = run("keygen", "--private", private, "--public", public)
    assert result.exit_code == 0, result.output
    return private, public


def db(path: Path) -> str:
    return f"sqlite:///{path}"


def assert_ledger_intact(path: Path, before: str) -> None:
    assert digest(path) == before
    assert run("verify", "--db", db(path)).exit_code == 0


def checkpoints_in(path: Path) -> int:
    store = open_store(db(path), read_only=True)
    try:
        return len(load_checkpoints(store))
    finally:
        store.dispose()


# --- never over a database or a key, even with --force ---------------------------------


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_export_never_writes_over_its_own_ledger(ledger: Path, force: list[str]) -> None:
    before = digest(ledger)
    for out in (ledger, ledger.parent / ".." / ledger.parent.name / ledger.name):
        one_line_error(run("export", "--db", db(ledger), out, *force), str(out))
    for side in ("-wal", "-shm", "-journal"):  # its side files, even before they exist
        out = Path(f"{ledger}{side}")
        one_line_error(run("export", "--db", db(ledger), out, *force), "even with --force")
        assert not out.exists()
    assert_ledger_intact(ledger, before)


def test_export_never_writes_over_its_ledger_through_a_hard_link(
    ledger: Path, tmp_path: Path
) -> None:
    alias = tmp_path / "alias.avro"
    os.link(ledger, alias)
    before = digest(ledger)
    one_line_error(run("export", "--db", db(ledger), alias, "--force"), "even with --force")
    assert_ledger_intact(ledger, before)


def test_export_never_writes_over_another_database(ledger: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = digest(other)
    one_line_error(
        run("export", "--db", db(ledger), other, "--force"), "a SQLite database", "--force"
    )
    assert digest(other) == before


def test_checkpoint_sign_never_writes_over_the_ledger_or_a_key(
    ledger: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    kept = {path: digest(path) for path in (ledger, private, public)}
    for out in (ledger, private, public):
        for force in ([], ["--force"]):
            result = run(
                "checkpoint", "sign", "--db", db(ledger), "--key", private, "--out", out, *force
            )
            one_line_error(result, str(out), "even with --force")
    assert {path: digest(path) for path in kept} == kept
    assert checkpoints_in(ledger) == 0  # refused before anything was signed and stored


def test_an_earlier_checkpoint_file_is_kept_unless_forced(
    ledger: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    out = tmp_path / "checkpoint.json"
    sign = ("checkpoint", "sign", "--db", db(ledger), "--key", private, "--out", out)
    assert run(*sign).exit_code == 0
    first = out.read_bytes()
    one_line_error(run(*sign), "exists", "--force")
    assert out.read_bytes() == first
    assert checkpoints_in(ledger) == 1
    forced = run(*sign, "--force")
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() != first
    assert run("checkpoint", "verify", "--db", db(ledger), "--pub", public, out).exit_code == 0
    assert listing(tmp_path) == sorted(
        ["checkpoint.json", "ledger.sqlite", "signer.pem", "signer.pub"]
    )


def test_an_existing_export_is_kept_unless_forced(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "history.avro"
    out.write_bytes(b"an earlier export")
    one_line_error(run("export", "--db", db(ledger), out), "exists", "--force")
    assert out.read_bytes() == b"an earlier export"
    result = run("export", "--db", db(ledger), out, "--force")
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(AVRO_MAGIC)
    replayed = run("replay", out, "--db", db(tmp_path / "copy.sqlite"))
    assert replayed.exit_code == 0, replayed.output


# --- symbolic links, directories, special files -----------------------------------------


def test_outputs_through_symbolic_links_are_refused(
    ledger: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, _ = keys
    dangling = tmp_path / "dangling.avro"
    dangling.symlink_to(tmp_path / "target.avro")
    to_file = tmp_path / "to-file.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    to_file.symlink_to(victim)
    for force in ([], ["--force"]):
        one_line_error(run("export", "--db", db(ledger), dangling, *force), "symbolic link")
        one_line_error(
            run(
                "checkpoint", "sign", "--db", db(ledger), "--key", private, "--out", to_file, *force
            ),
            "symbolic link",
        )
    assert not (tmp_path / "target.avro").exists()
    assert victim.read_text() == "keep me"


def test_a_directory_or_a_device_is_not_an_output(ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    one_line_error(run("export", "--db", db(ledger), tmp_path / "dir", "--force"), "directory")
    one_line_error(
        run("export", "--db", db(ledger), tmp_path / "no" / "such" / "x.avro"), "no directory"
    )
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # in a child process with a timeout: writing to a FIFO would block
    result = run_process("export", "--db", db(ledger), fifo, "--force", timeout=60)
    assert (
        result.returncode == 1
        and result.stderr == f"Error: {fifo} is not a regular file: not overwritten\n"
    )
    assert listing(tmp_path / "dir") == []


# --- '-' is stdout ----------------------------------------------------------------------


def test_dash_is_stdout(
    ledger: Path, keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text("a file named '-' (what export used to write)")
    exported = run("export", "--db", db(ledger), "-")
    assert exported.exit_code == 0, exported.output
    assert exported.stdout_bytes.startswith(AVRO_MAGIC)
    assert "to stdout" in exported.stderr
    history = tmp_path / "piped.avro"
    history.write_bytes(exported.stdout_bytes)
    replayed = run("replay", history, "--db", db(tmp_path / "copy.sqlite"))
    assert replayed.exit_code == 0, replayed.output
    signed = run("checkpoint", "sign", "--db", db(ledger), "--key", keys[0], "--out", "-")
    assert signed.exit_code == 0 and '"signature"' in signed.stdout, signed.output
    assert (tmp_path / "-").read_text() == "a file named '-' (what export used to write)"


def test_binary_export_to_a_terminal_is_refused(ledger: Path, tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        result = run_process(
            "export", "--db", db(ledger), "-", stdout=terminal, stderr=subprocess.PIPE, cwd=tmp_path
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: not writing binary data to a terminal: redirect stdout (> FILE, | …) or name a file"
    ]
    assert not (tmp_path / "-").exists()


# --- failures leave the old file and no temporary file ---------------------------------


@pytest.fixture
def big_ledger(tmp_path: Path) -> Path:
    """A ledger whose export takes long enough to be caught half way (~150 kB)."""
    path = tmp_path / "ledger.sqlite"
    store = open_store(db(path))
    build_ledger(store, orders=300)
    store.dispose()
    return path


def test_a_write_that_fails_half_way_leaves_the_old_file(big_ledger: Path, tmp_path: Path) -> None:
    path = big_ledger
    out = tmp_path / "history.avro"
    assert run("export", "--db", db(path), out).exit_code == 0
    size = out.stat().st_size
    assert size > 120_000, size  # so the limit below falls inside the export
    out.write_bytes(b"the old export")
    result = run_process("export", "--db", db(path), out, "--force", max_file_bytes=100_000)
    assert result.returncode == 1, result
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert out.read_bytes() == b"the old export"
    assert listing(tmp_path) == ["history.avro", "ledger.sqlite"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_export_interrupted_half_way_leaves_the_old_file(
    big_ledger: Path, tmp_path: Path, signum: int
) -> None:
    out = tmp_path / "history.avro"
    out.write_bytes(b"the old export")
    process = subprocess.Popen(
        [str(LEDGER), "export", "--db", db(big_ledger), str(out), "--force"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:  # the temporary file exists while the export writes it: poll for it
        while not list(tmp_path.glob(".history.avro.*.tmp")):
            assert process.poll() is None, "the export ended before it was seen writing"
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.001)
        process.send_signal(signum)
    finally:
        process.wait(timeout=60)
    assert process.returncode != 0
    assert out.read_bytes() == b"the old export"
    leftovers = [p.name for p in tmp_path.glob(".history.avro.*.tmp")]
    # Ctrl-C cleans up; after kill -9 only the temporary file can remain, never OUT half done
    assert leftovers == [] if signum == signal.SIGINT else len(leftovers) <= 1


def test_a_rename_that_fails_leaves_the_old_file(ledger: Path, tmp_path: Path) -> None:
    """A sticky directory (like /tmp) where the old output belongs to another user: the
    export is written whole, then the rename over the other user's file is refused."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the old file to another user")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    out = shared / "history.avro"
    out.write_bytes(b"someone else's export")
    for path in (shared, out):
        os.chown(path, 65534, 65534)
    result = run_process("export", "--db", db(ledger), out, "--force", unprivileged=True)
    assert result.returncode == 1, result
    assert result.stderr.strip() == f"Error: cannot write {out}: Operation not permitted"
    assert out.read_bytes() == b"someone else's export"
    assert listing(shared) == ["history.avro"]


def test_a_read_only_directory_gets_no_file(ledger: Path, tmp_path: Path) -> None:
    """No file appears, and a writable old file in it is not rewritten in place (a
    half-written export would then replace it): the rename needs the directory."""
    locked, free = tmp_path / "locked", tmp_path / "free"
    locked.mkdir()
    free.mkdir()
    old = locked / "old.avro"
    old.write_bytes(b"the old export")
    old.chmod(0o666)
    locked.chmod(0o555)
    try:
        exported = run_process("export", "--db", db(ledger), locked / "h.avro", unprivileged=True)
        forced = run_process("export", "--db", db(ledger), old, "--force", unprivileged=True)
        half = run_process(  # the private key could be written, the public one cannot
            "keygen", "--private", free / "k.pem", "--public", locked / "k.pub", unprivileged=True
        )
        keys = run_process(
            "keygen",
            "--private",
            locked / "k.pem",
            "--public",
            locked / "k.pub",
            unprivileged=True,
        )
    finally:
        locked.chmod(0o755)
    for result in (exported, keys, forced, half):
        assert result.returncode == 1, result
        assert "Permission denied" in result.stderr and len(result.stderr.splitlines()) == 1
    assert listing(locked) == ["old.avro"]
    assert listing(free) == []
    assert old.read_bytes() == b"the old export"


# --- keygen: two new files, both or neither ---------------------------------------------


def test_keygen_refuses_one_path_for_both_keys(tmp_path: Path) -> None:
    one_line_error(
        run("keygen", "--private", tmp_path / "k", "--public", tmp_path / "k"), "both name"
    )
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    one_line_error(
        run("keygen", "--private", tmp_path / "real/k", "--public", tmp_path / "alias/k"),
        "both name",
    )
    assert listing(tmp_path / "real") == []


def test_keygen_writes_both_keys_or_neither(tmp_path: Path) -> None:
    private = tmp_path / "k.pem"
    one_line_error(
        run("keygen", "--private", private, "--public", tmp_path / "missing/k.pub"),
        "no directory",
    )
    assert listing(tmp_path) == []
    again = run("keygen", "--private", private, "--public", tmp_path / "k.pub")
    assert again.exit_code == 0, again.output
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert listing(tmp_path) == ["k.pem", "k.pub"]


def test_keygen_never_follows_a_symbolic_link(tmp_path: Path) -> None:
    (tmp_path / "private.pem").symlink_to(tmp_path / "elsewhere.pem")
    one_line_error(
        run("keygen", "--private", tmp_path / "private.pem", "--public", tmp_path / "k.pub"),
        "symbolic link",
    )
    assert listing(tmp_path) == ["private.pem"]
    one_line_error(run("keygen", "--private", "-", "--public", tmp_path / "k.pub"), "stdout")


# --- private keys must be private -------------------------------------------------------


def test_a_private_key_others_can_read_is_refused(ledger: Path, keys: tuple[Path, Path]) -> None:
    private, _ = keys
    for mode in (0o644, 0o640, 0o604, 0o620):
        private.chmod(mode)
        one_line_error(
            run("checkpoint", "sign", "--db", db(ledger), "--key", private),
            f"mode {mode:04o}",
            f"chmod 600 {private}",
        )
    assert checkpoints_in(ledger) == 0
    private.chmod(0o400)
    assert run("checkpoint", "sign", "--db", db(ledger), "--key", private).exit_code == 0


def test_a_private_key_must_be_a_regular_file(
    ledger: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    one_line_error(
        run("checkpoint", "sign", "--db", db(ledger), "--key", "/dev/null"), "not a regular file"
    )
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)  # in a child process with a timeout: reading a FIFO would block
    result = run_process("checkpoint", "sign", "--db", db(ledger), "--key", fifo, timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"Error: the key {fifo} is not a regular file\n"
    assert checkpoints_in(ledger) == 0
    link = tmp_path / "key-link.pem"  # a link to a private key is fine (mounted secrets)
    link.symlink_to(keys[0])
    assert run("checkpoint", "sign", "--db", db(ledger), "--key", link).exit_code == 0


# --- only the commands that make a ledger create one ------------------------------------

NEEDS_A_LEDGER = (
    ["export", "OUT"],
    ["checkpoint", "sign", "--key", "KEY"],
    ["checkpoint", "sign", "--key", "KEY", "--out", "OUT"],
    ["serve", "--host", "256.0.0.1"],  # an address that cannot serve: it ends either way
    ["project"],
    ["rebuild"],
    ["check"],
)


def _args(template: list[str], out: Path, key: Path) -> list[str]:
    return [{"OUT": str(out), "KEY": str(key)}.get(a, a) for a in template]


@pytest.mark.parametrize("template", NEEDS_A_LEDGER, ids=" ".join)
def test_a_mistyped_db_creates_nothing(
    template: list[str], tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    missing = work / "ledgr.sqlite"
    args = _args(template, work / "out.json", keys[0])
    one_line_error(run(*args, "--db", db(missing)), str(missing), "does not exist", "migrate")
    assert listing(work) == []


@pytest.mark.parametrize("template", NEEDS_A_LEDGER, ids=" ".join)
def test_a_database_without_a_ledger_stays_as_it_was(
    template: list[str], tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    empty, other = tmp_path / "empty.sqlite", tmp_path / "other.sqlite"
    empty.touch()
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    for path in (empty, other):
        before = digest(path)
        args = _args(template, tmp_path / "out.json", keys[0])
        one_line_error(run(*args, "--db", db(path)), str(path), "no ledger", "ledger migrate")
        assert digest(path) == before
    assert listing(tmp_path) == ["empty.sqlite", "other.sqlite", "signer.pem", "signer.pub"]


@pytest.mark.parametrize("template", NEEDS_A_LEDGER, ids=" ".join)
def test_an_empty_postgres_database_stays_empty(
    template: list[str], empty_pg_url: str, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    args = _args(template, tmp_path / "out.json", keys[0])
    one_line_error(run(*args, "--db", empty_pg_url), "no ledger", "ledger migrate")
    engine = create_engine(empty_pg_url)
    try:
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
            assert conn.execute(text("SELECT count(*) FROM pg_sequences")).scalar() == 0
    finally:
        engine.dispose()
    assert not (tmp_path / "out.json").exists()


def test_the_commands_that_make_a_ledger_never_take_over_another_database(
    tmp_path: Path,
) -> None:
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    before = digest(other)
    events = tmp_path / "none.jsonl"
    events.write_text("")
    for args in (["migrate"], ["ingest", str(events)]):
        one_line_error(run(*args, "--db", db(other)), str(other), "without a ledger")
    assert digest(other) == before


def test_the_commands_that_make_a_ledger_still_do(tmp_path: Path) -> None:
    assert run("migrate", "--db", db(tmp_path / "a.sqlite")).exit_code == 0
    events = tmp_path / "none.jsonl"
    events.write_text("")
    assert run("ingest", events, "--db", db(tmp_path / "b.sqlite")).exit_code == 0
    for name in ("a.sqlite", "b.sqlite"):
        assert run("verify", "--db", db(tmp_path / name)).exit_code == 0


# --- ingest reads events, not the ledger ----------------------------------------------


def test_ingest_refuses_a_database_an_export_or_a_compressed_file(
    ledger: Path, tmp_path: Path
) -> None:
    """Each "line" of such a file would become a dead letter for good (append-only)."""
    export = tmp_path / "history.avro"
    assert run("export", "--db", db(ledger), export).exit_code == 0
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"type": "order_placed"}\n'))
    dead_letters = len(json.loads(run("dead-letters", "--db", db(ledger), "--json").output))
    for source, kind in ((ledger, "SQLite database"), (export, "replay"), (packed, "zcat")):
        result = run("ingest", source, "--db", db(ledger))
        assert result.exit_code == 1  # after the progress bar's label, one error line:
        assert result.output.splitlines()[-1] == (
            f"Error: {source.name} is {binary_kind(source.read_bytes())}, not JSON lines: "
            "nothing ingested"
        )
        assert kind in result.output
    stdin = CliRunner().invoke(main, ["ingest", "-", "--db", db(ledger)], input=ledger.read_bytes())
    one_line_error(stdin, "SQLite database")
    after = json.loads(run("dead-letters", "--db", db(ledger), "--json").output)
    assert len(after) == dead_letters
    assert run("verify", "--db", db(ledger)).exit_code == 0


# --- the demo deletes only its own files ------------------------------------------------


def test_the_demo_never_deletes_a_file_that_is_not_a_database(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, _ = keys
    before = digest(private)
    one_line_error(
        run("demo", "--db", f"sqlite:///{private}", "--overwrite", "--orders", "1"),
        "not a SQLite database",
    )
    assert digest(private) == before


def test_the_demo_keeps_an_api_env_it_did_not_write(tmp_path: Path) -> None:
    config = tmp_path / "api.env"
    config.write_text("LEDGER_API_TOKENS=finance:the-real-one\n")
    one_line_error(
        run("demo", "--db", f"sqlite:///{tmp_path / 'demo.sqlite'}", "--orders", "1"),
        str(config),
        "not made",
    )
    assert config.read_text() == "LEDGER_API_TOKENS=finance:the-real-one\n"
    assert listing(tmp_path) == ["api.env"]
