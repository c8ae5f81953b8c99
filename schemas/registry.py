"""The schema registry: every known writer schema by fingerprint, one reader schema per type.

Schema files are named ``<event type>.v<version>.avsc``. The registry built by
``Registry.default()`` holds the production schemas shipped in this package; tests build
others from any list of files (``Registry.from_files``) to exercise evolution.

Each schema is parsed once. For fastavro the ``logicalType`` annotations are dropped: the
binary encoding is identical, and the codec then reads and writes timestamps as the
integer milliseconds the domain events hold, instead of datetimes, exactly and faster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro

from schemas.compat import check_resolvable
from schemas.fingerprint import fingerprint, parsing_canonical_form

NAMESPACE = "ledger.events"
_FILE_NAME = re.compile(r"^(?P<type>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


class RegistryError(ValueError):
    """A schema file is misnamed, malformed or incompatible with its type's reader."""


def record_name(event_type: str) -> str:
    """``order_placed`` -> ``OrderPlaced``."""
    return "".join(part.capitalize() for part in event_type.split("_"))


def _strip_logical(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    if isinstance(schema, dict):
        return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def timestamp_fields(schema: dict[str, Any]) -> frozenset[str]:
    """Top-level fields of a record schema annotated ``timestamp-millis``."""
    names = set()
    for f in schema["fields"]:
        branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
        for branch in branches:
            if isinstance(branch, dict) and branch.get("logicalType") == "timestamp-millis":
                names.add(f["name"])
    return frozenset(names)


@dataclass(frozen=True, eq=False)
class SchemaInfo:
    """One schema version of one event type.

    ``schema`` is the JSON as written (with docs and logical types); ``parsed`` is the
    fastavro-parsed form without logical types; ``header`` is the single-object prefix.
    """

    event_type: str
    version: int
    schema: dict[str, Any]
    canonical_form: str
    fingerprint: int
    header: bytes
    parsed: Any = field(repr=False)
    timestamp_fields: frozenset[str] = frozenset()
    field_names: frozenset[str] = frozenset()


def load_schema_file(path: Path | str) -> SchemaInfo:
    """Read and check one ``<type>.v<version>.avsc`` file; raises RegistryError."""
    path = Path(path)
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise RegistryError(f"{path.name}: schema files are named <event_type>.v<version>.avsc")
    event_type, version = match["type"], int(match["version"])
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: cannot read schema: {exc}") from exc
    return schema_info(event_type, version, schema, source=str(path))


def schema_info(
    event_type: str, version: int, schema: dict[str, Any], source: str = "<schema>"
) -> SchemaInfo:
    """Check and parse one schema given as JSON; raises RegistryError."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise RegistryError(f"{source}: an event schema must be a record")
    if schema.get("namespace") != NAMESPACE or schema.get("name") != record_name(event_type):
        raise RegistryError(
            f"{source}: expected record {NAMESPACE}.{record_name(event_type)}, got "
            f"{schema.get('namespace')}.{schema.get('name')}"
        )
    try:
        parsed = fastavro.parse_schema(_strip_logical(schema))
        canonical = parsing_canonical_form(schema)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise RegistryError(f"{source}: invalid Avro schema: {exc}") from exc
    fp = fingerprint(schema)
    return SchemaInfo(
        event_type=event_type,
        version=version,
        schema=schema,
        canonical_form=canonical,
        fingerprint=fp,
        header=b"\xc3\x01" + fp.to_bytes(8, "little"),
        parsed=parsed,
        timestamp_fields=timestamp_fields(schema),
        field_names=frozenset(f["name"] for f in schema["fields"]),
    )


def production_schema_files() -> list[Path]:
    """The ``*.avsc`` files shipped in the ``schemas`` package, by name."""
    root = resources.files("schemas")
    return sorted(
        (Path(str(entry)) for entry in root.iterdir() if entry.name.endswith(".avsc")),
        key=lambda p: p.name,
    )


class Registry:
    """Writer schemas by fingerprint and the reader schema (latest version) of each type.

    ``reader_versions`` pins the reader of some types to an older version (a consumer that
    knows a newer writer schema but still reads the old shape). Construction checks that
    every writer schema of a type can be resolved to that type's reader schema, so decoding
    never meets an unresolvable pair at run time.
    """

    def __init__(
        self, infos: list[SchemaInfo], reader_versions: dict[str, int] | None = None
    ) -> None:
        self._by_header: dict[bytes, SchemaInfo] = {}
        self._by_version: dict[tuple[str, int], SchemaInfo] = {}
        self._readers: dict[str, SchemaInfo] = {}
        for info in infos:
            if info.header in self._by_header:
                other = self._by_header[info.header]
                raise RegistryError(
                    f"{info.event_type} v{info.version} has the fingerprint of "
                    f"{other.event_type} v{other.version}"
                )
            if (info.event_type, info.version) in self._by_version:
                raise RegistryError(f"{info.event_type} v{info.version} registered twice")
            self._by_header[info.header] = info
            self._by_version[(info.event_type, info.version)] = info
            current = self._readers.get(info.event_type)
            if current is None or info.version > current.version:
                self._readers[info.event_type] = info
        for event_type, version in (reader_versions or {}).items():
            pinned = self._by_version.get((event_type, version))
            if pinned is None:
                raise RegistryError(f"no schema {event_type} v{version} to read with")
            self._readers[event_type] = pinned
        for info in infos:
            reader = self._readers[info.event_type]
            problem = check_resolvable(_strip_logical(info.schema), _strip_logical(reader.schema))
            if problem:
                raise RegistryError(
                    f"{info.event_type} v{info.version} cannot be read as v{reader.version}: "
                    f"{problem}"
                )

    @classmethod
    def from_files(
        cls, paths: list[Path], reader_versions: dict[str, int] | None = None
    ) -> Registry:
        return cls([load_schema_file(p) for p in paths], reader_versions)

    @classmethod
    def default(
        cls,
        extra_files: tuple[Path | str, ...] = (),
        reader_versions: dict[str, int] | None = None,
    ) -> Registry:
        """The production schemas shipped in the ``schemas`` package, plus ``extra_files``."""
        files = [*production_schema_files(), *map(Path, extra_files)]
        return cls.from_files(files, reader_versions)

    def by_header(self, header: bytes) -> SchemaInfo | None:
        """The writer schema whose single-object header (marker + fingerprint) is given."""
        return self._by_header.get(header)

    def by_fingerprint(self, fp: int) -> SchemaInfo | None:
        return self._by_header.get(b"\xc3\x01" + fp.to_bytes(8, "little"))

    def get(self, event_type: str, version: int) -> SchemaInfo | None:
        return self._by_version.get((event_type, version))

    def reader(self, event_type: str) -> SchemaInfo | None:
        """The latest schema version of ``event_type``: the one events are read into."""
        return self._readers.get(event_type)

    def event_types(self) -> list[str]:
        return sorted(self._readers)

    def __iter__(self) -> Iterator[SchemaInfo]:
        return iter(sorted(self._by_version.values(), key=lambda i: (i.event_type, i.version)))
