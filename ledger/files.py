"""Files the CLI writes: nothing is overwritten by mistake, nothing is left half written.

Every command that writes a file (``export``, ``checkpoint sign --out``, ``keygen``, the
demo's dashboard config) goes through ``output_file`` or ``write_key_pair``:

- ``-`` means stdout (binary data is refused when stdout is a terminal);
- an output that is a symbolic link (dangling or not), a directory or not a regular file
  is refused: the link's target or a device would be what is written;
- an existing file is replaced only with ``force``, and never when it is a database (a
  SQLite file, its -wal/-shm/-journal, the ledger being read even under another name) or
  a PEM file (a key): those are refused even with ``force``;
- the data goes to a temporary file beside the output, is fsynced, and is renamed into
  place (then the directory is fsynced): a reader sees the old file or the whole new one,
  and a failure or Ctrl-C removes the temporary file. Without ``force`` the rename cannot
  replace a file that appeared meanwhile (a hard link, which fails if the name exists).

``read_private_key`` reads a signing key the way ssh does: a regular file that only its
owner may read (mode 0600 or stricter), else a refusal that says how to fix it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

STDOUT = "-"
SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_MAGICS = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----")
_SNIFF_BYTES = 64 * 1024  # a PEM header sits near the start of a key file
MAX_KEY_BYTES = 64 * 1024  # an Ed25519 PEM is ~120 bytes; anything huge is not a key


class FileRefused(Exception):
    """A file refused (an output that must not be written, a key that is not private) or
    that could not be written: the message is one line."""


def is_stdout(path: Path | str) -> bool:
    return str(path) == STDOUT


def check_output(
    path: Path, *, force: bool = False, protect: Iterable[Path] = (), forceable: bool = True
) -> None:
    """FileRefused unless ``path`` may be written: see the module docstring. ``protect``:
    files that must never be written whatever their content (the ledger database).
    ``forceable`` False: the command has no --force, so the refusal does not offer it."""
    if is_stdout(path):  # even if a file named "-" exists: it is not what is written
        return
    if os.path.islink(path):
        raise FileRefused(f"{path} is a symbolic link: name the file itself, not a link")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise FileRefused(f"cannot write {path}: there is no directory {parent}")
    for protected in protect:
        if _same_file(path, protected):
            raise FileRefused(f"{path} is the ledger database: {_never(forceable)}")
    what = _precious(path)
    if what:
        raise FileRefused(f"{path} is {what}: {_never(forceable)}")
    if not os.path.lexists(path):
        return
    if path.is_dir():
        raise FileRefused(f"{path} is a directory: name a file")
    if not path.is_file():
        raise FileRefused(f"{path} is not a regular file: not overwritten")
    if not force:
        raise FileRefused(_exists(path, forceable))


def _never(forceable: bool) -> str:
    return "not overwritten" + (", even with --force" if forceable else "")


def _exists(path: Path, forceable: bool) -> str:
    return f"{path} exists: not overwritten" + (" (--force replaces it)" if forceable else "")


def _same_file(path: Path, protected: Path) -> bool:
    """``path`` is ``protected`` or one of its SQLite side files, by name or by inode."""
    for suffix in ("", *SQLITE_SIDE_FILES):
        other = Path(f"{protected}{suffix}")
        if os.path.realpath(path) == os.path.realpath(other):
            return True
        try:
            if os.path.samefile(path, other):
                return True
        except OSError:  # one of them does not exist
            pass
    return False


def _precious(path: Path) -> str | None:
    """What ``path`` holds if it must never be overwritten (a database, a key), else None."""
    for suffix in SQLITE_SIDE_FILES:
        if path.name.endswith(suffix) and _head(Path(str(path)[: -len(suffix)])).startswith(
            SQLITE_MAGIC
        ):
            return f"the {suffix[1:]} file of a SQLite database"
    if not path.is_file():
        return None
    try:
        head = _head(path, strict=True)
    except OSError as exc:
        raise FileRefused(
            f"cannot read {path} to check that it is not a database or a key "
            f"({exc.strerror}): not overwritten"
        ) from exc
    if head.startswith(SQLITE_MAGIC):
        return "a SQLite database"
    if head[:4] in WAL_MAGICS:
        return "a SQLite write-ahead log"
    if _PEM.search(head):
        return "a PEM file (a key or a certificate)"
    return None


_BINARY_KINDS = (
    (SQLITE_MAGIC, "a SQLite database (a ledger is given with --db)"),
    *((magic, "a SQLite write-ahead log") for magic in WAL_MAGICS),
    (b"Obj\x01", "an Avro file (an export is read by `ledger replay`)"),
    (b"\x1f\x8b", "gzip-compressed (decompress it first: zcat FILE | ledger ingest -)"),
    (b"-----BEGIN ", "a PEM file (a key or a certificate)"),
)


def binary_kind(head: bytes) -> str | None:
    """What a file starting with ``head`` is, if it is a known format that is not text
    input: a database, an export, a compressed file, a key."""
    return next((kind for magic, kind in _BINARY_KINDS if head.startswith(magic)), None)


def is_sqlite_database(path: Path) -> bool:
    return _head(path).startswith(SQLITE_MAGIC)


def _head(path: Path, *, strict: bool = False) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(_SNIFF_BYTES)
    except OSError:
        if strict:
            raise
        return b""


@contextmanager
def output_file(
    path: Path, *, force: bool = False, protect: Iterable[Path] = (), binary: bool = False
) -> Iterator[Path]:
    """A temporary path to write the output to; when the block ends without an error it
    becomes ``path`` (atomically; ``-``: it is copied to stdout), on any error it is
    removed and ``path`` is untouched. Checks ``path`` first (``check_output``) and again
    just before the rename: a long export must not replace what appeared meanwhile."""
    protect = tuple(protect)
    if is_stdout(path):
        with _to_stdout(binary) as temp:
            yield temp
        return
    check_output(path, force=force, protect=protect)
    temp = _temp_beside(path, private=False)
    try:
        try:
            yield temp
        except OSError as exc:  # e.g. the disk is full: the old file stays as it was
            raise FileRefused(f"cannot write {path}: {exc.strerror or exc}") from exc
        _fsync(temp)
        check_output(path, force=force, protect=protect)
        _place(temp, path, replace=force)
    finally:
        temp.unlink(missing_ok=True)


def write_file(
    path: Path, data: bytes, *, force: bool = False, protect: Iterable[Path] = ()
) -> None:
    with output_file(path, force=force, protect=protect) as temp:
        temp.write_bytes(data)


@contextmanager
def _to_stdout(binary: bool) -> Iterator[Path]:
    stdout = sys.stdout
    if binary and stdout.isatty():
        raise FileRefused(
            "not writing binary data to a terminal: redirect stdout (> FILE, | …) or name a file"
        )
    with tempfile.TemporaryDirectory(prefix="ledger-out-") as directory:
        temp = Path(directory) / "out"
        yield temp
        stdout.flush()
        with temp.open("rb") as fh:
            shutil.copyfileobj(fh, stdout.buffer)
        stdout.buffer.flush()


def write_key_pair(
    private_path: Path, private_pem: bytes, public_path: Path, public_pem: bytes
) -> None:
    """Both keys or neither: two new files (never replacing one), the private key created
    0600 with O_EXCL, both written and fsynced as temporary files before either is named;
    if naming the second fails, the first is removed again."""
    for path in (private_path, public_path):
        if is_stdout(path):
            raise FileRefused("keys are written to files: '-' (stdout) is not accepted here")
    if _same_destination(private_path, public_path):
        raise FileRefused(f"--private and --public both name {private_path}: give two files")
    for path in (private_path, public_path):
        check_output(path, forceable=False)
    temps: list[Path] = []
    placed: list[tuple[Path, os.stat_result]] = []
    try:
        for path, data, private in (
            (private_path, private_pem, True),
            (public_path, public_pem, False),
        ):
            temp = _temp_beside(path, private=private)
            temps.append(temp)
            temp.write_bytes(data)
            _fsync(temp)
        for path, temp in zip((private_path, public_path), temps, strict=True):
            identity = temp.stat()
            _place(temp, path, replace=False, forceable=False)
            placed.append((path, identity))
    except BaseException:
        for path, identity in placed:  # remove only the file this call made
            if os.path.samestat(os.lstat(path), identity):
                path.unlink()
        raise
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def _same_destination(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:  # the same directory under two names (a bind mount, a symlinked parent)
        return a.name == b.name and os.path.samefile(a.absolute().parent, b.absolute().parent)
    except OSError:
        return False


def _temp_beside(path: Path, *, private: bool) -> Path:
    """A new file in ``path``'s directory (so the rename stays on one file system),
    created with O_EXCL, mode 0600 for a private key, else what the umask gives."""
    directory = path.absolute().parent
    try:
        # the name cut short: with the prefix and suffix it must stay under NAME_MAX
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:150]}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise FileRefused(f"cannot write {path}: {exc.strerror} in {directory}") from exc
    try:
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
    finally:
        os.close(fd)
    return Path(name)


def _place(temp: Path, path: Path, *, replace: bool, forceable: bool = True) -> None:
    """Give ``temp`` the name ``path``: os.replace with ``replace``, else a hard link that
    fails if the name exists (a rename would silently replace it). Then fsync the
    directory so the new name survives a crash."""
    try:
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError:
                raise FileRefused(_exists(path, forceable)) from None
            except OSError:  # a file system without hard links: check, then rename
                if os.path.lexists(path):
                    raise FileRefused(_exists(path, forceable)) from None
                os.replace(temp, path)
    except OSError as exc:
        raise FileRefused(f"cannot write {path}: {exc.strerror}") from exc
    _fsync_directory(path.absolute().parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # e.g. a platform without directory fds: the rename itself happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_private_key(path: Path) -> bytes:
    """The bytes of a private key file, refused unless it is a regular file that no
    group or other user may read or write (what ssh demands of its keys)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang the command
    except OSError as exc:
        raise FileRefused(f"cannot read the key {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"the key {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise FileRefused(
                f"the private key {path} is accessible to other users (mode {mode:04o}): "
                f"run `chmod 600 {path}` (and consider the key exposed)"
            )
        data = fh.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise FileRefused(f"the key {path} is over {MAX_KEY_BYTES} bytes: not a key")
    return data
