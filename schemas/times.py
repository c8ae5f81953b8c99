"""Event times: integer milliseconds since the Unix epoch, UTC, and their ISO-8601 form.

The supported range is the years 0001..9999, so every time has an ISO-8601 text form;
the codec and the JSON form both refuse anything outside it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Inclusive bounds, in ms since the epoch: 0001-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z
MIN_TIME_MS = -62_135_596_800_000
MAX_TIME_MS = 253_402_300_799_999

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def ms_to_iso(ms: int) -> str:
    """``1772352000000`` -> ``"2026-03-01T08:00:00.000Z"`` (always milliseconds, UTC)."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z"
    )


def iso_to_ms(text: str) -> int:
    """Parse an ISO-8601 time with an explicit offset to integer ms; raises ValueError.

    ASCII only, no control characters: ``datetime.fromisoformat`` stops at a NUL (it
    would read ``"…Z\x00junk"`` as a time) and reads non-ASCII digits."""
    if not (text.isascii() and text.isprintable()):
        raise ValueError(f"time {text!r} holds characters other than printable ASCII")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    ms, rest = divmod(dt - _EPOCH, _MS)
    if rest:  # also a UTC offset with (micro)seconds, as in "+05:00:00.000001"
        raise ValueError(f"time {text!r} is more precise than a millisecond")
    return ms
