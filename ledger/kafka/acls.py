"""The Kafka ACLs of the ledger's principals (docs/security.md "Kafka principals and ACLs").

Least authority on the bus (SPEC §4.7): the publisher principal writes buyer activity to
the orders topic; the finance principal (the API's Kafka sink) writes the accounts topic,
which moves money; the consumer reads both, writes the dead-letter topic and the barrier
markers it repairs in the orders topic (docs/ordering.md), and alone uses its consumer
groups. Nothing else is allowed: the broker runs with ``allow.everyone.if.no.acl.found``
false and only the admin is a super user. The consumer also refuses any record whose
event type does not belong on its topic (``wrong_topic``), so a principal allowed on the
orders topic still cannot move money through it.

``python -m ledger.kafka.acls`` applies them (deploy/kafka/start.sh runs it): as the admin
of the ``LEDGER_KAFKA_CREDENTIALS`` file, LITERAL on the configured topic and group names.
``--scratch`` adds the same grants PREFIXED on the scratch names tests and benchmarks
create (``SCRATCH_TOPICS``; any consumer group) - for a test broker only. Creating an ACL
that exists is a no-op, so it can run on every start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.config import ConfigError, Topics, load_settings
from ledger.kafka.auth import ENV, KafkaCredentials

# Fresh consumer groups of Kafka replays (consumers/replay.py names them so).
REPLAY_GROUP_PREFIX = "ledger-replay-"
# Scratch topics of tests and benchmarks on a test broker: each name starts with these.
SCRATCH_TOPICS = Topics(
    orders="scratch.orders.", accounts="scratch.accounts.", dead_letters="scratch.dead-letters."
)


@dataclass(frozen=True)
class Grant:
    role: str  # a key of the credentials file's principals
    resource: str  # "topic" | "group"
    name: str
    operation: str  # READ | WRITE | DESCRIBE
    prefixed: bool = False


def grants(topics: Topics, group: str, *, prefixed: bool = False) -> list[Grant]:
    """The table: every (role, resource, operation) allowed, nothing more."""
    table = [
        ("publisher", topics.orders, ("WRITE", "DESCRIBE")),
        ("finance", topics.accounts, ("WRITE", "DESCRIBE")),
        # end offsets for the dashboard's lag (DESCRIBE reads no record)
        ("finance", topics.orders, ("DESCRIBE",)),
        ("consumer", topics.orders, ("READ", "DESCRIBE", "WRITE")),  # WRITE: repaired markers
        ("consumer", topics.accounts, ("READ", "DESCRIBE")),
        ("consumer", topics.dead_letters, ("WRITE", "DESCRIBE")),
    ]
    out = [Grant(role, "topic", name, op, prefixed) for role, name, ops in table for op in ops]
    out.append(Grant("consumer", "group", group, "READ"))
    return out


def production_grants(topics: Topics, group: str) -> list[Grant]:
    return [
        *grants(topics, group),
        Grant("consumer", "group", REPLAY_GROUP_PREFIX, "READ", prefixed=True),
    ]


def scratch_grants() -> list[Grant]:
    # any group: tests name a fresh group per run; "*" is Kafka's wildcard (LITERAL)
    return [
        g if g.resource == "topic" else Grant(g.role, "group", "*", g.operation)
        for g in grants(SCRATCH_TOPICS, "-", prefixed=True)
    ]


def to_acls(granted: Iterable[Grant], users: Mapping[str, str]) -> list[Any]:
    """kafka-python ACL objects for ``granted``; ``users`` maps role -> SCRAM username."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    acls = []
    for g in granted:
        pattern = ACLResourcePatternType.PREFIXED if g.prefixed else ACLResourcePatternType.LITERAL
        kind = ResourceType.TOPIC if g.resource == "topic" else ResourceType.GROUP
        acls.append(
            ACL(
                principal=f"User:{users[g.role]}",
                host="*",
                operation=ACLOperation[g.operation],
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(kind, g.name, pattern),
            )
        )
    return acls


def apply(bootstrap: str, creds: KafkaCredentials, granted: list[Grant]) -> int:
    """Create the ACLs (existing ones stay as they are); returns how many were asked for."""
    from kafka.admin import KafkaAdminClient

    missing = sorted({g.role for g in granted} - set(creds.principals))
    if missing:
        raise ConfigError(f"{creds.path} has no principal for role(s) {', '.join(missing)}")
    users = {role: p.username for role, p in creds.principals.items()}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **creds.options("admin"))
    try:
        result = admin.create_acls(to_acls(granted, users))
    finally:
        admin.close()
    if result["failed"]:
        raise RuntimeError(f"the broker refused ACLs: {result['failed'][:3]}")
    return len(granted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.kafka.acls", description=__doc__)
    parser.add_argument("--bootstrap", help="default: LEDGER_KAFKA_BOOTSTRAP")
    parser.add_argument("--scratch", action="store_true", help="test broker: scratch prefixes")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if not settings.kafka_credentials:
            raise ConfigError(f"{ENV} is not set: the admin's credentials are needed")
        creds = KafkaCredentials.load(settings.kafka_credentials)
        granted = production_grants(settings.topics, settings.consumer_group)
        if args.scratch:
            granted += scratch_grants()
        count = apply(args.bootstrap or settings.kafka_bootstrap, creds, granted)
    except (ConfigError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a Kafka error: one line, not a traceback
        print(f"error: applying ACLs failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    scratch = ", with the scratch prefixes" if args.scratch else ""
    print(f"Kafka ACLs in place ({count} grants{scratch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
