"""The optional compiled build of the domain (ledger/compiled.py, deploy/build-compiled.sh)
gives exactly what the plain Python gives: the same outcomes and the same journal and
event-log hashes, over random streams. No speed is asserted (bench/compiled_rules.py
measures it).

The build (mypyc, ~1 minute on two busy cores) is cached under .cache/compiled and made
again only when the domain's sources change; the comparison itself takes seconds."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import compiled
from ledger.payload import dump_event
from tests.support.streams import streams

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LEDGER_CACHE_DIR") or ROOT / ".cache") / "compiled"
STREAMS = 40


@pytest.fixture(scope="module")
def build() -> Path:
    """A current compiled build, made once per change of the domain's sources."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / ".compiled.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs build it once
        if not compiled.current(CACHE):
            compiled.build(CACHE)
    assert compiled.current(CACHE)
    return CACHE


def compiled_env(build: Path) -> dict[str, str]:
    # the suite runs interpreted by default (tests/conftest.py)
    return {"LEDGER_COMPILED_DIR": str(build), "LEDGER_COMPILED": "on"}


def run_digests(streams_file: Path, workdir: Path, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.domain_digest", str(streams_file), str(workdir)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_compiled_equals_interpreted_over_random_streams(build: Path, tmp_path: Path) -> None:
    drawn: list[list[str]] = []

    @settings(
        max_examples=STREAMS,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        drawn.append([dump_event(e) for e in data.draw(streams(max_steps=60))])

    draw()
    streams_file = tmp_path / "streams.json"
    streams_file.write_text(json.dumps(drawn))
    events = sum(len(s) for s in drawn)
    assert len(drawn) == STREAMS and events > STREAMS * 10

    as_compiled = run_digests(streams_file, tmp_path, compiled_env(build))
    as_python = run_digests(streams_file, tmp_path, {"LEDGER_COMPILED": "off"})

    assert str(as_compiled["domain"]).startswith("compiled"), as_compiled["domain"]
    assert str(as_python["domain"]).startswith("interpreted"), as_python["domain"]
    assert as_compiled["rules"] == as_python["rules"]
    assert as_compiled["ledger"] == as_python["ledger"]


def test_the_compiled_modules_are_the_ones_loaded(build: Path, tmp_path: Path) -> None:
    """With the build, every compiled domain module is imported from it (an extension);
    a stale build is refused, and the domain runs as plain Python."""
    probe = (
        "import json, ledger.compiled as c, importlib;"
        "mods = [importlib.import_module('ledger.domain.' + m[:-3]) for m in c.compiled_modules()];"
        "print(json.dumps([c.STATUS, sorted({m.__file__.rsplit('.', 1)[-1] for m in mods})]))"
    )

    def loaded(env: dict[str, str]) -> list[object]:
        out = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        result: list[object] = json.loads(out.stdout)
        return result

    status, suffixes = loaded(compiled_env(build))
    assert str(status).startswith("compiled") and suffixes == ["so"]
    status, suffixes = loaded({**compiled_env(build), "LEDGER_COMPILED": "off"})
    assert str(status).startswith("interpreted") and suffixes == ["py"]
    stale = tmp_path / "stale"
    stale.mkdir()
    stamp = json.loads((build / compiled.STAMP).read_text())
    (stale / compiled.STAMP).write_text(json.dumps({**stamp, "digest": "0" * 64}))
    status, suffixes = loaded(compiled_env(stale))
    assert "stale" in str(status) and suffixes == ["py"]
