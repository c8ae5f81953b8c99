"""The optional compiled build of the pure domain (``ledger/domain``), with mypyc.

The domain is plain Python and always works as such. ``deploy/build-compiled.sh`` (or
``ledger.compiled.main``) compiles its modules with mypyc into the venv
(``<venv>/ledger-compiled``, or ``$LEDGER_COMPILED_DIR``). When ``ledger`` is imported,
``activate`` puts that build in front of ``ledger.domain``'s search path, so its modules
load compiled, but only if it was built from exactly the domain sources present (a digest
of them is stamped in the build) for this interpreter; otherwise, or with
``LEDGER_COMPILED=off``, the domain stays interpreted. Either way ``STATUS`` says which,
and ``ledger --version`` and the consumer's start-up log show it.

Compiled and interpreted give the same outcomes and the same journal hashes:
tests/integration/test_compiled_domain.py builds it and compares them over random streams.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOMAIN = Path(__file__).resolve().parent / "domain"
# Left interpreted: the package itself, ``events`` (mypyc rejects a ClassVar without a
# default in a dataclass) and ``reasons`` (a StrEnum).
INTERPRETED_ONLY = frozenset({"__init__.py", "events.py", "reasons.py"})
STAMP = "build.json"

STATUS = "interpreted (no compiled build)"  # set by activate()


def build_dir() -> Path:
    return Path(os.environ.get("LEDGER_COMPILED_DIR") or Path(sys.prefix) / "ledger-compiled")


def compiled_modules() -> list[str]:
    return sorted(p.name for p in DOMAIN.glob("*.py") if p.name not in INTERPRETED_ONLY)


def source_digest() -> str:
    """What a build must have been made from: every domain source, and the interpreter."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for path in sorted(DOMAIN.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def activate() -> str:
    """Use the compiled build if there is a current one (before any domain module is
    imported: ``ledger/__init__.py`` calls this). Returns and records ``STATUS``."""
    global STATUS
    STATUS = _activate()
    return STATUS


def _activate() -> str:
    if os.environ.get("LEDGER_COMPILED", "").lower() in {"0", "off", "no", "false"}:
        return "interpreted (LEDGER_COMPILED=off)"
    where = build_dir()
    try:
        stamp = json.loads((where / STAMP).read_text())
    except (OSError, ValueError):
        return "interpreted (no compiled build)"
    if stamp.get("digest") != source_digest():
        return f"interpreted (the compiled build in {where} is stale: rebuild it)"
    import ledger.domain  # its __init__ is empty: nothing of the domain is loaded yet

    loaded = [m for m in sys.modules if m.startswith("ledger.domain.")]
    if loaded:
        return f"interpreted (domain modules imported before the build: {sorted(loaded)[0]})"
    # the modules' shared native library, a top-level module for mypyc's shims
    for library in stamp["libraries"]:
        name = library.split(".")[0]
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, where / library)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    ledger.domain.__path__.insert(0, str(where / "ledger" / "domain"))
    return f"compiled (mypyc {stamp['mypy']}, {where})"


def is_compiled() -> bool:
    return STATUS.startswith("compiled")


def build(into: Path) -> Path:
    """Compile the domain with mypyc into ``into`` (replaced whole). Needs a C compiler and
    the Python headers; mypy (with mypyc) is a test dependency."""
    mypyc = Path(sys.executable).with_name("mypyc")
    digest = source_digest()
    with tempfile.TemporaryDirectory(prefix="ledger-mypyc-") as tmp:
        tree = Path(tmp)
        (tree / "ledger" / "domain").mkdir(parents=True)
        (tree / "ledger" / "__init__.py").write_text("")
        for path in DOMAIN.glob("*.py"):
            shutil.copy2(path, tree / "ledger" / "domain" / path.name)
        modules = [f"ledger/domain/{name}" for name in compiled_modules()]
        done = subprocess.run(
            [str(mypyc), *modules], cwd=tree, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"mypyc failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        staged = Path(tempfile.mkdtemp(prefix=".ledger-compiled-", dir=into.parent))
        try:
            (staged / "ledger" / "domain").mkdir(parents=True)
            libraries = []
            for lib in tree.glob("*.so"):  # mypyc's shared library (one per build)
                shutil.copy2(lib, staged / lib.name)
                libraries.append(lib.name)
            for shim in (tree / "ledger" / "domain").glob("*.so"):
                shutil.copy2(shim, staged / "ledger" / "domain" / shim.name)
            stamp = {"digest": digest, "mypy": _mypy_version(), "libraries": sorted(libraries)}
            (staged / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
            if into.exists():
                shutil.rmtree(into)
            staged.rename(into)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return into


def current(into: Path) -> bool:
    """Whether ``into`` holds a build of the sources present."""
    try:
        return bool(json.loads((into / STAMP).read_text()).get("digest") == source_digest())
    except (OSError, ValueError):
        return False


def _mypy_version() -> str:
    from mypy.version import __version__

    return str(__version__)


def main(argv: list[str]) -> int:
    if argv[:1] != ["build"]:
        print("usage: python -m ledger.compiled build [DIR]", file=sys.stderr)
        return 2
    into = Path(argv[1]) if len(argv) > 1 else build_dir()
    into.parent.mkdir(parents=True, exist_ok=True)
    print(f"compiling ledger/domain with mypyc into {build(into)}")
    return 0
