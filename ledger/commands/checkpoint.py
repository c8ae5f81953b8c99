"""``ledger keygen`` and ``ledger checkpoint sign|verify``: Ed25519 signed checkpoints of
the chain heads (ledger/chain/checkpoint.py), verifiable offline with the public key."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.bootstrap import Purpose, open_for
from ledger.chain.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_signature,
    load_private_key,
    load_public_key,
    parse,
)
from ledger.chain.checkpoint import (
    keygen as new_key_pair,
)
from ledger.chain.journal import VerifyReport
from ledger.commands.common import db_option, ledger_files, resolve_db
from ledger.files import check_output, is_stdout, read_private_key, write_file, write_key_pair
from ledger.service import wall_clock_ms
from ledger.store.checkpoints import (
    StoredCheckpoint,
    extension_problems,
    load_checkpoints,
    sign_checkpoint,
)
from ledger.store.store import Store
from ledger.store.verify import verify

K = TypeVar("K")


@click.command()
@click.option(
    "--private",
    "private_path",
    required=True,
    type=click.Path(path_type=Path),
    help="where to write the private key (PEM, a new file created with mode 0600)",
)
@click.option(
    "--public",
    "public_path",
    required=True,
    type=click.Path(path_type=Path),
    help="where to write the public key (PEM, a new file): give it to the auditors",
)
def keygen(private_path: Path, public_path: Path) -> None:
    """Create an Ed25519 key pair for signing checkpoints: two new files, both or neither.
    Never overwrites a file, never writes through a symbolic link."""
    private_pem, public_pem = new_key_pair()
    write_key_pair(private_path, private_pem, public_path, public_pem)
    click.echo(f"private key {private_path} (keep it secret), public key {public_path}")


@click.group()
def checkpoint() -> None:
    """Signed checkpoints of the chain heads."""


@checkpoint.command("sign")
@db_option
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the private key (PEM) from `ledger keygen`",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="also write the checkpoint to this new file (default, or `-`: print it)",
)
@click.option("--force", is_flag=True, help="replace --out if it exists (never a database or key)")
@click.pass_context
def sign(
    ctx: click.Context, db_url: str | None, key_path: Path, out: Path | None, force: bool
) -> None:
    """Verify the ledger, then sign its heads and store the checkpoint in the database.

    Refuses to sign a ledger that does not verify: a signature would bless tampering.
    The private key must be a regular file only its owner can read (chmod 600)."""
    url = resolve_db(ctx, db_url)
    if out is not None and is_stdout(out):
        out = None
    protect = ledger_files(url)  # a key is a PEM file: refused by its content
    if out is not None:  # refused before anything is signed and stored
        check_output(out, force=force, protect=protect)
    key = read_key(load_private_key, key_path, private=True)
    store = open_for(url, Purpose.MAINTAIN)
    try:
        report = verify(store)
        if not report.ok:
            raise click.ClickException(f"not signed: the ledger does not verify: {report.problem}")
        signed = sign_checkpoint(store, key, wall_clock_ms())
    finally:
        store.dispose()
    if out is None:
        click.echo(signed.to_json())
    else:
        write_file(out, (signed.to_json() + "\n").encode(), force=force, protect=protect)
        click.echo(f"checkpoint of {len(signed.chains())} chain(s) written to {out}")


@checkpoint.command("verify")
@db_option
@click.option(
    "--pub",
    "pub_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the signer's public key (PEM)",
)
@click.argument(
    "checkpoint_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def verify_checkpoint(
    ctx: click.Context,
    db_url: str | None,
    pub_path: Path,
    checkpoint_file: Path | None,
    as_json: bool,
) -> None:
    """Prove that the ledger extends CHECKPOINT_FILE (default: every checkpoint stored in
    the database): the signature verifies with the public key, the ledger verifies from
    genesis, and every signed link is still the row at its position. Exit 1 if not."""
    key = read_key(load_public_key, pub_path)
    if checkpoint_file is not None:
        loaded = [_load_file(checkpoint_file)]
    store = open_for(resolve_db(ctx, db_url), Purpose.READ)
    try:
        if checkpoint_file is None:
            loaded = load_checkpoints(store)
            if not loaded:
                raise click.ClickException("no checkpoint stored in the database")
        verified: list[VerifyReport] = []  # filled by the first signature that checks
        results = [
            (
                s,
                [s.problem or "malformed"]
                if s.checkpoint is None
                else _problems(store, s.checkpoint, key, verified),
            )
            for s in loaded
        ]
    finally:
        store.dispose()
    bad = [(s, p) for s, p in results if p]
    if as_json:
        click.echo(json.dumps([_outcome(s, p) for s, p in results], indent=2))
    for s, problems in bad if not as_json else ():
        click.echo(f"TAMPERED: {_name(s)}: {problems[0]}", err=True)
    if not bad and not as_json:
        click.echo(f"OK: the ledger extends {len(results)} signed checkpoint(s)")
    sys.exit(1 if bad else 0)


def _load_file(path: Path) -> StoredCheckpoint:
    """The checkpoint in ``path``, or a finding that names the file (never a traceback)."""
    try:
        return StoredCheckpoint(str(path), parse(read_small(path).decode("utf-8")))
    except (CheckpointError, UnicodeDecodeError, OSError) as exc:
        return StoredCheckpoint(str(path), None, f"malformed: {str(exc)[:300]}")


def _name(stored: StoredCheckpoint) -> str:
    if stored.checkpoint is None:
        return f"checkpoint {stored.row}"
    return f"checkpoint of {stored.checkpoint.created_at} ({stored.row[:16]})"


def _outcome(stored: StoredCheckpoint, problems: list[str]) -> dict[str, object]:
    c = stored.checkpoint
    return {
        "id": stored.row,
        "created_at": None if c is None else c.created_at,
        "key_id": None if c is None else c.key_id,
        "ledger_head": None if c is None else c.body["ledger_head"],
        "ok": not problems,
        "problems": problems,
    }


def _problems(
    store: Store, checkpoint: Checkpoint, key: Ed25519PublicKey, verified: list[VerifyReport]
) -> list[str]:
    try:
        check_signature(checkpoint, key)
    except CheckpointError as exc:
        return [str(exc)]
    if not verified:  # verify once, however many checkpoints are checked
        verified.append(verify(store))
    return extension_problems(store, checkpoint, verified[0])


MAX_KEY_OR_CHECKPOINT_BYTES = 16 << 20  # a PEM key is ~120 bytes, a checkpoint ~100 per chain


def read_small(path: Path) -> bytes:
    """The whole of a key or checkpoint file, refused past a bound (``/dev/zero`` or a
    huge file is not read whole). CheckpointError, or OSError from the file system."""
    with path.open("rb") as fh:
        data = fh.read(MAX_KEY_OR_CHECKPOINT_BYTES + 1)
    if len(data) > MAX_KEY_OR_CHECKPOINT_BYTES:
        raise CheckpointError(f"larger than {MAX_KEY_OR_CHECKPOINT_BYTES} bytes: not a key")
    return data


def read_key(load: Callable[[bytes], K], path: Path, *, private: bool = False) -> K:
    """``load`` applied to a key or checkpoint file, read within a bound; a private key
    only if no other user may read it (ledger/files.py). One-line ClickException."""
    try:
        return load(read_private_key(path) if private else read_small(path))
    except (CheckpointError, OSError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
