"""The golden vectors agree with Apache Avro for Java (fingerprints, decoding, re-encoding).

Runs schemas/vectors/java/CheckVectors.java with the JDK's source launcher (about 2 s once
Maven has fetched the Avro jars into .cache/avro-java).
"""

from __future__ import annotations

import importlib.util

from schemas.examples import VECTORS_DIR


def _java_check():
    spec = importlib.util.spec_from_file_location("java_check", VECTORS_DIR / "java_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vectors_agree_with_apache_avro_java():
    java_check = _java_check()
    rows = java_check.run_java()
    assert len(rows) == len(list(VECTORS_DIR.glob("*.hex")))
    assert all(same for _, _, same, _ in rows)
    assert java_check.check(rows) == []
