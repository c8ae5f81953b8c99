"""Cross-check the golden vectors with Apache Avro for Java (the reference implementation).

    .venv/bin/python schemas/vectors/java_check.py

Fetches org.apache.avro:avro 1.12.2 with Maven into ``$LEDGER_CACHE_DIR/avro-java`` (default
``<repo>/.cache``) on first use, runs java/CheckVectors.java with Java's source launcher and
checks, for every vector, that Java (1) computes the same CRC-64-AVRO fingerprint as
``schemas.fingerprint``, (2) decodes the bytes with ``BinaryMessageDecoder`` and a
``SchemaStore.Cache`` to the same record as our codec, and (3) re-encodes it to the same
bytes. Exit status 0 when all agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def jar_dir() -> Path:
    return Path(os.environ.get("LEDGER_CACHE_DIR", REPO / ".cache")) / "avro-java"


def fetch_jars() -> Path:
    """The directory of Avro's jars, fetched with Maven if not there yet."""
    target = jar_dir()
    if not any(target.glob("avro-1.12.2.jar")):
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mvn", "-q", "-B", "-f", str(HERE / "java" / "pom.xml"),
                "dependency:copy-dependencies", "-DincludeScope=runtime",
                f"-DoutputDirectory={target}",
            ],
            check=True,
        )  # fmt: skip
    return target


def run_java() -> list[tuple[str, int, bool, dict[str, Any]]]:
    """(vector name, Java's fingerprint, bytes equal after re-encoding, record) per vector."""
    classpath = os.pathsep.join(str(p) for p in sorted(fetch_jars().glob("*.jar")))
    out = subprocess.run(
        ["java", "-cp", classpath, str(HERE / "java" / "CheckVectors.java"),
         str(REPO / "schemas"), str(HERE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    rows = []
    for line in out.stdout.splitlines():
        name, fp, same, record = line.split("\t", 3)
        rows.append((name, int(fp, 16), same == "bytes-equal", json.loads(record)))
    if out.returncode not in (0, 1) or not rows:
        raise RuntimeError(f"java failed ({out.returncode}): {out.stderr[-2000:]}")
    return rows


def check(rows: list[tuple[str, int, bool, dict[str, Any]]] | None = None) -> list[str]:
    """Every disagreement between Java (``rows`` of ``run_java``, run if not given) and
    this project, as text (empty: all agree)."""
    sys.path.insert(0, str(REPO))
    from ledger.domain.events import event_to_record
    from schemas.codec import decode
    from schemas.registry import Registry

    registry = Registry.default()
    problems = []
    rows = run_java() if rows is None else rows
    expected = {f"{i.event_type}.v{i.version}" for i in registry}
    if {name for name, *_ in rows} != expected:
        problems.append(f"Java checked {sorted(n for n, *_ in rows)}, expected {sorted(expected)}")
    for name, fp, same, record in rows:
        event_type, version = name.split(".v")
        info = registry.get(event_type, int(version))
        if info is None:
            problems.append(f"{name}: not in the registry")
            continue
        if info.fingerprint != fp:
            problems.append(f"{name}: Java fingerprint {fp:#x}, ours {info.fingerprint:#x}")
        if not same:
            problems.append(f"{name}: Java re-encodes to different bytes")
        data = bytes.fromhex((HERE / f"{name}.hex").read_text().strip())
        if event_to_record(decode(data)) != record:
            problems.append(f"{name}: Java decodes {record}, we decode {decode(data)}")
    return problems


if __name__ == "__main__":
    found = check()
    for problem in found:
        print(problem, file=sys.stderr)
    print("all vectors agree with Apache Avro for Java" if not found else "MISMATCH")
    raise SystemExit(1 if found else 0)
