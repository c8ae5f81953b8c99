"""Settings, read once from the environment (and an optional env-style file), then frozen.

Every setting has an environment variable ``LEDGER_<NAME>``; ``LEDGER_CONFIG`` may name a
file of ``NAME=value`` lines read first (the environment wins over the file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

LOCALES = ("en", "zh_CN")  # the locales the dashboard and the CLI offer (ledger/read/money.py)


DEFAULT_DB_URL = "sqlite:///ledger.sqlite"


@dataclass(frozen=True)
class Topics:
    """Which topic carries which events (see docs/topics.md)."""

    orders: str = "ledger.orders"  # clicks, orders, completions, refunds, keyed by buyer
    accounts: str = "ledger.accounts"  # plans, enrollments, settlement runs, payouts
    dead_letters: str = "ledger.dead-letters"


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB_URL  # the service's (least-privileged) connection
    migrate_db_url: str = ""  # the schema owner's, for `ledger migrate` only ("": db_url)
    kafka_bootstrap: str = "127.0.0.1:19092"
    # a JSON file of SASL/SCRAM principals per role (ledger/kafka/auth.py); "": no SASL
    kafka_credentials: str = ""
    # seconds a publisher (`ledger produce`, the API's Kafka sink) waits for Kafka to
    # acknowledge a record before it gives up (ledger/kafka/publisher.py)
    kafka_ack_timeout: float = 30.0
    consumer_group: str = "commission-ledger"
    topics: Topics = field(default_factory=Topics)
    metrics_port: int = 0  # 0: no metrics endpoint
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    # API tokens, stored hashed: "role:sha256hex,role:sha256hex" (ledger api-token makes one)
    api_tokens: str = ""
    # how amounts read on the CLI and, by default, on the dashboard: en | zh_CN
    locale: str = "en"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


MAX_CONFIG_BYTES = 1 << 20  # a settings file is a few lines: never read /dev/zero whole


def _read_file(path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"LEDGER_CONFIG file {path} is larger than {MAX_CONFIG_BYTES} bytes")
        text = data.decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"LEDGER_CONFIG names {path}, which does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read LEDGER_CONFIG file {path}: {exc}") from exc
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError(f"{path}:{number}: expected NAME=value, got {raw!r}")
        name, value = line.split("=", 1)
        values[name.strip().upper().removeprefix("LEDGER_")] = value.strip()
    return values


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build the settings from ``environ`` (default ``os.environ``); raises ConfigError."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, str] = {}
    if env.get("LEDGER_CONFIG"):
        values.update(_read_file(Path(env["LEDGER_CONFIG"])))
    values.update({k.removeprefix("LEDGER_"): v for k, v in env.items() if k.startswith("LEDGER_")})

    def get(name: str, default: str) -> str:
        return values.get(name, default)

    port = get("METRICS_PORT", "0").strip()
    if not (port.isascii() and port.isdigit() and 0 <= int(port) <= 65535):
        raise ConfigError(f"LEDGER_METRICS_PORT must be a port number 0..65535, not {port!r}")
    metrics_port = int(port)
    log_format = get("LOG_FORMAT", "auto")
    if log_format not in ("auto", "json", "console"):
        raise ConfigError(f"LEDGER_LOG_FORMAT must be auto, json or console, not {log_format!r}")
    log_level = get("LOG_LEVEL", "info").lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(
            f"LEDGER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}"
        )
    locale = get("LOCALE", Settings.locale).replace("-", "_")
    known = {name.lower(): name for name in LOCALES}
    if locale.lower() not in known:
        raise ConfigError(f"LEDGER_LOCALE must be one of {', '.join(LOCALES)}, not {locale!r}")
    ack_timeout = get("KAFKA_ACK_TIMEOUT", str(Settings.kafka_ack_timeout)).strip()
    try:
        kafka_ack_timeout = float(ack_timeout)
    except ValueError:
        kafka_ack_timeout = -1.0
    if not 0 < kafka_ack_timeout <= 3600:
        raise ConfigError(
            f"LEDGER_KAFKA_ACK_TIMEOUT must be seconds, more than 0 and at most 3600, "
            f"not {ack_timeout!r}"
        )
    defaults = Topics()
    return Settings(
        db_url=get("DB_URL", DEFAULT_DB_URL),
        migrate_db_url=get("MIGRATE_DB_URL", ""),
        kafka_bootstrap=get("KAFKA_BOOTSTRAP", Settings.kafka_bootstrap),
        kafka_credentials=get("KAFKA_CREDENTIALS", ""),
        kafka_ack_timeout=kafka_ack_timeout,
        consumer_group=get("CONSUMER_GROUP", Settings.consumer_group),
        topics=Topics(
            orders=get("TOPIC_ORDERS", defaults.orders),
            accounts=get("TOPIC_ACCOUNTS", defaults.accounts),
            dead_letters=get("TOPIC_DEAD_LETTERS", defaults.dead_letters),
        ),
        metrics_port=metrics_port,
        log_format=log_format,
        log_level=log_level,
        api_tokens=get("API_TOKENS", ""),
        locale=known[locale.lower()],
    )
