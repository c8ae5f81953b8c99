"""The Kafka principals: credentials come from a private file, one entry per role, and the
ACL table gives each role its own part only (docs/security.md "Kafka principals and ACLs",
which must show the same table)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ledger.config import ConfigError, Topics, load_settings
from ledger.kafka.acls import production_grants, scratch_grants
from ledger.kafka.auth import KafkaCredentials, client_options, publisher_options
from ledger.kafka.publisher import Publisher

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
TOPICS = Topics()


def _write(tmp_path: Path, data: object, mode: int = 0o600) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


def _creds(*roles: str) -> dict:
    return {
        "mechanism": "SCRAM-SHA-512",
        "principals": {r: {"username": f"u-{r}", "password": f"p-{r}"} for r in roles},
    }


def test_each_role_gets_its_own_sasl_settings(tmp_path: Path) -> None:
    path = _write(tmp_path, _creds("publisher", "finance"))
    settings = load_settings({"LEDGER_KAFKA_CREDENTIALS": str(path)})
    assert client_options(settings, "publisher") == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u-publisher",
        "sasl_plain_password": "p-publisher",
    }
    both = publisher_options(settings)
    assert both["orders"]["sasl_plain_username"] == "u-publisher"
    assert both["accounts"]["sasl_plain_username"] == "u-finance"
    with pytest.raises(ConfigError, match="no credentials for the 'consumer' role"):
        client_options(settings, "consumer")
    assert client_options(load_settings({}), "consumer") == {}  # no file: no SASL
    tls = _write(
        tmp_path,
        {**_creds("consumer"), "security_protocol": "SASL_SSL", "ssl_cafile": "/etc/ca.pem"},
    )
    options = KafkaCredentials.load(tls).options("consumer")
    assert (options["security_protocol"], options["ssl_cafile"]) == ("SASL_SSL", "/etc/ca.pem")


@pytest.mark.parametrize(
    ("data", "mode", "message"),
    [
        (_creds("admin"), 0o644, "open to other users"),
        ({"principals": []}, 0o600, "'principals' object"),
        ({"mechanism": "PLAIN", "principals": {}}, 0o600, "mechanism must be"),
        ({"principals": {"root": {"username": "a", "password": "b"}}}, 0o600, "unknown role"),
        ({"principals": {"admin": {"username": "a"}}}, 0o600, "a username and a password"),
        ({"security_protocol": "PLAINTEXT", "principals": {}}, 0o600, "security_protocol"),
    ],
)
def test_a_bad_credentials_file_is_a_one_line_error(
    tmp_path: Path, data: object, mode: int, message: str
) -> None:
    path = _write(tmp_path, data, mode)
    with pytest.raises(ConfigError, match=message):
        KafkaCredentials.load(path)
    with pytest.raises(ConfigError, match="does not exist"):
        KafkaCredentials.load(tmp_path / "missing.json")


def test_a_publisher_writes_each_topic_as_its_principal() -> None:
    two = Publisher("127.0.0.1:1", TOPICS, auth={"orders": {"a": 1}, "accounts": {"a": 2}})
    one = Publisher("127.0.0.1:1", TOPICS, auth={"orders": {"a": 1}, "accounts": {"a": 1}})
    assert not two._shared and one._shared


def _granted(grants, role: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for g in grants:
        if g.role == role:
            out.setdefault(g.name, set()).add(g.operation)
    return out


def test_each_principal_gets_its_own_part_only() -> None:
    grants = production_grants(TOPICS, "commission-ledger")
    assert all(not g.prefixed for g in grants if g.resource == "topic")
    assert _granted(grants, "publisher") == {TOPICS.orders: {"WRITE", "DESCRIBE"}}
    assert _granted(grants, "finance") == {
        TOPICS.accounts: {"WRITE", "DESCRIBE"},
        TOPICS.orders: {"DESCRIBE"},
    }
    assert _granted(grants, "consumer") == {
        TOPICS.orders: {"READ", "DESCRIBE", "WRITE"},
        TOPICS.accounts: {"READ", "DESCRIBE"},
        TOPICS.dead_letters: {"WRITE", "DESCRIBE"},
        "commission-ledger": {"READ"},
        "ledger-replay-": {"READ"},
    }
    writers = {g.role for g in grants if g.operation == "WRITE" and g.name == TOPICS.accounts}
    assert writers == {"finance"}  # money moves on finance's word only
    assert not [g for g in grants if g.name == TOPICS.dead_letters and g.operation == "READ"]
    scratch = scratch_grants()
    assert all(g.prefixed for g in scratch if g.resource == "topic")
    assert {(g.role, g.operation) for g in scratch} == {(g.role, g.operation) for g in grants}


def test_the_docs_show_the_same_table() -> None:
    text = DOCS.read_text()
    section = text.split("## Kafka principals and ACLs", 1)[1]
    grants = production_grants(TOPICS, "commission-ledger")
    columns = (TOPICS.orders, TOPICS.accounts, TOPICS.dead_letters)
    for role in ("publisher", "finance", "consumer"):
        row = next(line for line in section.splitlines() if line.startswith(f"| `ledger-{role}`"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        documented = {
            name: set(re.findall(r"\b(READ|WRITE|DESCRIBE)\b", cell))
            for name, cell in zip(columns, cells[2:5], strict=True)
        }
        wanted = _granted(grants, role)
        assert documented == {name: wanted.get(name, set()) for name in columns}, role
        assert ("READ" in cells[5]) == (role == "consumer")


def test_the_ack_timeout_is_a_setting_with_a_bounded_default() -> None:
    assert load_settings({}).kafka_ack_timeout == 30.0
    assert load_settings({"LEDGER_KAFKA_ACK_TIMEOUT": "2.5"}).kafka_ack_timeout == 2.5
    for bad in ("0", "-1", "nan", "inf", "soon", "7200"):
        with pytest.raises(ConfigError, match="LEDGER_KAFKA_ACK_TIMEOUT"):
            load_settings({"LEDGER_KAFKA_ACK_TIMEOUT": bad})
