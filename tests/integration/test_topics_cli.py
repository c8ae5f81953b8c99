"""`ledger create-topics` makes the documented layout and refuses a broken one; `ledger
produce` refuses a topic that does not exist instead of letting a broker invent it."""

from __future__ import annotations

from click.testing import CliRunner
from kafka.admin import KafkaAdminClient, NewTopic

from bench.support import auth
from ledger.cli import main
from tests.support.kafka import delete_topics, unique


def partitions(bootstrap: str, name: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **auth("admin"))
    try:
        return len(admin.describe_topics([name])[0]["partitions"])
    finally:
        admin.close()


def test_create_topics_makes_the_layout_and_checks_it(kafka_bootstrap, tmp_path) -> None:
    prefix = unique("ct")
    env = {
        "LEDGER_TOPIC_ORDERS": f"{prefix}.orders",
        "LEDGER_TOPIC_ACCOUNTS": f"{prefix}.acc",
        "LEDGER_TOPIC_DEAD_LETTERS": f"{prefix}.dlq",
    }
    names = list(env.values())
    runner = CliRunner()
    try:
        first = runner.invoke(
            main,
            ["create-topics", "--bootstrap", kafka_bootstrap, "--orders-partitions", "3"],
            env=env,
        )
        assert first.exit_code == 0, first.output
        assert [partitions(kafka_bootstrap, n) for n in names] == [3, 1, 1]
        # the single broker's default.replication.factor (tests/integration/
        # test_kafka_cluster.py: 3 on the cluster)
        assert first.output.count("replication factor 1)") == 3, first.output
        again = runner.invoke(main, ["create-topics", "--bootstrap", kafka_bootstrap], env=env)
        assert again.exit_code == 0 and again.output.count("exists") == 3

        broken = dict(env, LEDGER_TOPIC_ACCOUNTS=f"{prefix}.acc4")
        names.append(broken["LEDGER_TOPIC_ACCOUNTS"])
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, **auth("admin"))
        admin.create_topics([NewTopic(broken["LEDGER_TOPIC_ACCOUNTS"], 4, 1)])
        admin.close()
        refused = runner.invoke(main, ["create-topics", "--bootstrap", kafka_bootstrap], env=broken)
        assert refused.exit_code == 1 and "must have exactly 1 partition" in refused.output
    finally:
        delete_topics(kafka_bootstrap, names)


def test_produce_refuses_a_missing_topic(kafka_bootstrap, tmp_path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(
        '{"type": "settlement_run", "event_id": "e1", "occurred_at": 1, '
        '"producer": "t", "run_id": "r1", "as_of": 1}\n'
    )
    missing = unique("missing")
    result = CliRunner().invoke(
        main,
        [
            "produce",
            str(path),
            "--bootstrap",
            kafka_bootstrap,
            "--topic-orders",
            missing,
            "--topic-accounts",
            missing,
        ],
    )
    assert result.exit_code == 1
    assert "do not exist: run `ledger create-topics` first" in result.output
