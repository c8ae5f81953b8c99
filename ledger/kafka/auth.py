"""Kafka credentials: which principal each client authenticates as (docs/operations.md).

One scheme: ``LEDGER_KAFKA_CREDENTIALS`` names a JSON file, readable by its owner only,
holding a SASL/SCRAM user per role::

    {"mechanism": "SCRAM-SHA-512",
     "principals": {"consumer": {"username": "ledger-consumer", "password": "..."}, ...}}

A process uses the roles of its job (``ledger consume``: consumer; ``ledger produce`` and
``ledger serve --kafka``: publisher for the orders topic, finance for the accounts topic;
``ledger create-topics``: admin), so a deployment gives each service a file with only its
own entries. deploy/kafka/start.sh writes one with every role for the local broker.
Without the variable, clients connect without SASL (only an unsecured broker accepts them).
Passwords never live in code or on a command line.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.config import ConfigError, Settings

ENV = "LEDGER_KAFKA_CREDENTIALS"
ROLES = ("admin", "publisher", "finance", "consumer")
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# SASL_PLAINTEXT is for a broker on loopback (deploy/kafka); across hosts use SASL_SSL, so
# the SCRAM exchange and the records are encrypted (optional "ssl_cafile" for the CA)
PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
MAX_FILE_BYTES = 64 * 1024

Options = Mapping[str, Any]  # keyword arguments for kafka-python's clients


@dataclass(frozen=True)
class Principal:
    username: str
    password: str


@dataclass(frozen=True)
class KafkaCredentials:
    path: str
    mechanism: str
    principals: Mapping[str, Principal]
    security_protocol: str = "SASL_PLAINTEXT"
    ssl_cafile: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KafkaCredentials:
        """Read and check the file; raises ConfigError with a one-line message."""
        where = Path(path)
        try:
            mode = where.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    f"{ENV} file {where} is open to other users (mode {stat.S_IMODE(mode):o}): "
                    f"chmod 600 {where}"
                )
            with where.open("rb") as fh:
                data = json.loads(fh.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES])
        except FileNotFoundError as exc:
            raise ConfigError(f"{ENV} names {where}, which does not exist") from exc
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {ENV} file {where}: {exc}") from exc
        return cls.parse(data, str(where))

    @classmethod
    def parse(cls, data: Any, path: str) -> KafkaCredentials:
        if not isinstance(data, dict) or not isinstance(data.get("principals"), dict):
            raise ConfigError(f"{path}: expected an object with a 'principals' object")
        mechanism = data.get("mechanism", "SCRAM-SHA-512")
        if mechanism not in MECHANISMS:
            raise ConfigError(f"{path}: mechanism must be one of {', '.join(MECHANISMS)}")
        protocol = data.get("security_protocol", "SASL_PLAINTEXT")
        if protocol not in PROTOCOLS:
            raise ConfigError(f"{path}: security_protocol must be one of {', '.join(PROTOCOLS)}")
        cafile = data.get("ssl_cafile")
        if cafile is not None and not (isinstance(cafile, str) and cafile):
            raise ConfigError(f"{path}: ssl_cafile must be a file name")
        principals = {}
        for role, entry in data["principals"].items():
            if role not in ROLES:
                raise ConfigError(f"{path}: unknown role {role!r} (roles: {', '.join(ROLES)})")
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("username"), str)
                and isinstance(entry.get("password"), str)
                and entry["username"]
                and entry["password"]
            ):
                raise ConfigError(f"{path}: role {role!r} needs a username and a password")
            principals[role] = Principal(entry["username"], entry["password"])
        return cls(path, mechanism, principals, protocol, cafile)

    def options(self, role: str) -> dict[str, Any]:
        """The SASL settings for a client acting as ``role``."""
        principal = self.principals.get(role)
        if principal is None:
            raise ConfigError(f"{ENV} file {self.path} has no credentials for the {role!r} role")
        options = {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": principal.username,
            "sasl_plain_password": principal.password,
        }
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options


def credentials(settings: Settings) -> KafkaCredentials | None:
    return KafkaCredentials.load(settings.kafka_credentials) if settings.kafka_credentials else None


def client_options(settings: Settings, role: str) -> dict[str, Any]:
    """Keyword arguments that make a kafka-python client authenticate as ``role`` ({} when
    no credentials are configured). Raises ConfigError."""
    found = credentials(settings)
    return {} if found is None else found.options(role)


def publisher_options(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per topic kind, the principal a Publisher writes with: buyer activity as the
    publisher, barrier events (the accounts topic) as finance."""
    return {
        "orders": client_options(settings, "publisher"),
        "accounts": client_options(settings, "finance"),
    }
