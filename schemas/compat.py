"""Static check that data written with one Avro schema can be read with another.

Follows the schema-resolution rules of the Avro specification, strictly: every branch of a
writer union must be readable (not only the branches some record happens to use), so a
registry that passes this check never fails to resolve a record at run time.
"""

from __future__ import annotations

from typing import Any

from schemas.fingerprint import PRIMITIVES

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _collect(schema: Any, namespace: str | None, names: dict[str, Any]) -> None:
    """Index every named type defined in ``schema`` by full name."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names)
    elif isinstance(schema, dict):
        type_ = schema.get("type")
        if not isinstance(type_, str):
            _collect(type_, namespace, names)
            return
        if type_ in ("record", "error", "enum", "fixed"):
            name = schema["name"]
            ns = schema.get("namespace", namespace)
            full = name if "." in name or not ns else f"{ns}.{name}"
            names[full] = schema
            names.setdefault(name, schema)
            namespace = full.rpartition(".")[0] or None
        for f in schema.get("fields", ()):
            _collect(f["type"], namespace, names)
        for key in ("items", "values"):
            if key in schema:
                _collect(schema[key], namespace, names)


class _Checker:
    def __init__(self, writer: Any, reader: Any) -> None:
        self.wnames: dict[str, Any] = {}
        self.rnames: dict[str, Any] = {}
        _collect(writer, None, self.wnames)
        _collect(reader, None, self.rnames)
        self.assumed: set[tuple[int, int]] = set()

    def _deref(self, schema: Any, names: dict[str, Any]) -> Any:
        while True:
            if isinstance(schema, str) and schema not in PRIMITIVES:
                schema = names.get(schema, schema)
                if isinstance(schema, str):
                    return schema
            elif isinstance(schema, dict) and not isinstance(schema.get("type"), str):
                schema = schema["type"]
            elif isinstance(schema, dict) and schema["type"] in PRIMITIVES:
                return schema["type"]
            elif isinstance(schema, dict) and schema["type"] in names:
                schema = names[schema["type"]]
            else:
                return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, str):
            return schema
        if isinstance(schema, list):
            return "union"
        return str(schema["type"])

    def check(self, writer: Any, reader: Any, path: str) -> str | None:
        w = self._deref(writer, self.wnames)
        r = self._deref(reader, self.rnames)
        wk, rk = self._kind(w), self._kind(r)
        if wk == "union":
            for branch in w:
                problem = self.check(branch, r, path)
                if problem:
                    return problem
            return None
        if rk == "union":
            for branch in r:
                if self.check(w, branch, path) is None:
                    return None
            return f"{path}: writer type {wk} matches no branch of the reader union"
        if wk != rk:
            if rk in _PROMOTIONS.get(wk, ()):
                return None
            return f"{path}: writer type {wk} cannot be read as {rk}"
        if wk in PRIMITIVES:
            return None
        if wk == "array":
            return self.check(w["items"], r["items"], f"{path}[]")
        if wk == "map":
            return self.check(w["values"], r["values"], f"{path}{{}}")
        wname, rname = w["name"].rpartition(".")[2], r["name"].rpartition(".")[2]
        if wname != rname and wname not in r.get("aliases", ()):
            return f"{path}: writer {wk} {wname} is not reader {rname}"
        if wk == "fixed":
            return None if w["size"] == r["size"] else f"{path}: fixed sizes differ"
        if wk == "enum":
            missing = set(w["symbols"]) - set(r["symbols"])
            if missing and "default" not in r:
                return f"{path}: reader enum lacks symbols {sorted(missing)}"
            return None
        key = (id(w), id(r))
        if key in self.assumed:  # recursive type: already being checked
            return None
        self.assumed.add(key)
        wfields = {f["name"]: f for f in w["fields"]}
        for rf in r["fields"]:
            wf = wfields.get(rf["name"])
            if wf is None:
                for alias in rf.get("aliases", ()):
                    wf = wfields.get(alias)
                    if wf is not None:
                        break
            if wf is None:
                if "default" not in rf:
                    return f"{path}.{rf['name']}: reader field has no writer field and no default"
                continue
            problem = self.check(wf["type"], rf["type"], f"{path}.{rf['name']}")
            if problem:
                return problem
        return None


def check_resolvable(writer: Any, reader: Any) -> str | None:
    """None if every datum of ``writer`` resolves to ``reader``, else the first problem."""
    return _Checker(writer, reader).check(writer, reader, "")
