"""ledger/files.py over arbitrary existing contents: an output is either refused and left
byte for byte as it was, or replaced whole by the new data; never a half-written file,
never a temporary file left behind, and a database or a key is always refused."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.files import SQLITE_MAGIC, WAL_MAGICS, FileRefused, write_file

PRECIOUS_PREFIXES = [
    SQLITE_MAGIC,
    *WAL_MAGICS,
    b"-----BEGIN PRIVATE KEY-----\n",
    b"-----BEGIN PUBLIC KEY-----\n",
]
contents = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(PRECIOUS_PREFIXES), st.binary(max_size=300)).map(b"".join),
    st.tuples(st.binary(max_size=100), st.just(b"-----BEGIN EC PRIVATE KEY-----")).map(b"".join),
)


def _precious(content: bytes) -> bool:
    """A database or a PEM block's header line (a bare "-----BEGIN " is not one)."""
    pem = re.search(rb"-----BEGIN [A-Z0-9 ]+-----", content)
    return content.startswith((SQLITE_MAGIC, *WAL_MAGICS)) or pem is not None


@settings(max_examples=200, deadline=None)
@given(old=contents, new=st.binary(max_size=300), force=st.booleans())
def test_an_output_is_refused_and_kept_or_replaced_whole(
    old: bytes, new: bytes, force: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "out.bin"
        out.write_bytes(old)
        try:
            write_file(out, new, force=force)
        except FileRefused as exc:
            assert not force or _precious(old), exc
            assert out.read_bytes() == old
        else:
            assert force and not _precious(old)
            assert out.read_bytes() == new
        assert [p.name for p in Path(directory).iterdir()] == ["out.bin"]


@settings(max_examples=50, deadline=None)
@given(new=st.binary(max_size=300))
def test_a_new_output_is_written_whole(new: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "new.bin"
        write_file(out, new)
        assert out.read_bytes() == new
        assert [p.name for p in Path(directory).iterdir()] == ["new.bin"]
