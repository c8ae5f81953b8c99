"""deploy/kafka/start.sh secures a broker and stays idempotent: the first start generates
the credentials (0600) and formats with their SCRAM users; a restart keeps credentials and
data; a data dir formatted without those users (a broker from before SCRAM users) is
reformatted with a message; stop.sh leaves nothing running. A second broker of its own
(a private cache dir and free ports), so the suite's broker is never touched."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from ledger.kafka.auth import KafkaCredentials

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    cache = tmp_path / "cache"
    libs = REPO / ".cache" / "kafka" / "libs"  # the suite's broker fetched them already
    (cache / "kafka").mkdir(parents=True)
    if libs.is_dir():
        shutil.copytree(libs, cache / "kafka" / "libs")
    env = {
        **os.environ,
        "LEDGER_CACHE_DIR": str(cache),
        "KAFKA_PORT": str(_free_port()),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
    }
    for name in ("LEDGER_KAFKA_CREDENTIALS", "KAFKA_SCRATCH_ACLS"):
        env.pop(name, None)
    yield env
    _run("stop.sh", env)


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _admin(env: dict[str, str], creds: Path) -> KafkaAdminClient:
    options = KafkaCredentials.load(creds).options("admin")
    return KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{env['KAFKA_PORT']}", **options)


def test_start_secures_restarts_keep_credentials_and_an_old_data_dir_is_reformatted(
    broker_env: dict[str, str],
) -> None:
    kafka_dir = Path(broker_env["LEDGER_CACHE_DIR"]) / "kafka"
    creds = kafka_dir / "credentials.json"
    first = _run("start.sh", broker_env)
    assert f"LEDGER_KAFKA_CREDENTIALS={creds}" in first.stdout
    for private in (creds, kafka_dir / "admin.properties", kafka_dir / "server.properties"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    principals = json.loads(creds.read_text())["principals"]
    assert set(principals) == {"admin", "publisher", "finance", "consumer"}
    assert principals["admin"]["password"] not in first.stdout + first.stderr
    assert not (kafka_dir / "format.args").exists()  # the passwords given to the format tool
    admin = _admin(broker_env, creds)
    admin.create_topics([NewTopic("kept", 1, 1)])
    admin.close()

    _run("stop.sh", broker_env)
    again = _run("start.sh", broker_env)
    assert "reformatting" not in again.stderr
    assert json.loads(creds.read_text())["principals"] == principals  # kept
    admin = _admin(broker_env, creds)
    assert "kept" in admin.list_topics()  # same data
    admin.close()

    # a data dir formatted before the broker was secured carries no stamp
    _run("stop.sh", broker_env)
    (kafka_dir / "data" / "ledger-scram.sha256").unlink()
    old = _run("start.sh", broker_env)
    assert "reformatting it" in old.stderr
    admin = _admin(broker_env, creds)  # the same credentials work on the new storage
    assert "kept" not in admin.list_topics()
    admin.close()
    stopped = _run("stop.sh", broker_env)
    assert "Kafka stopped" in stopped.stdout
    assert "not running" in _run("stop.sh", broker_env).stdout
