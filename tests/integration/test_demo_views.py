"""``ledger demo`` shows an order's multi-level payout view and a sharer's team, and the
dashboard command it prints works on the demo database with the token it prints."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from ledger.api.app import create_app
from ledger.api.auth import TokenBook
from ledger.cli import main
from ledger.store.opening import open_store
from ledger.web.pages import mount
from tests.support.api import dashboard_login


def test_demo_shows_the_views_and_opens_the_dashboard(tmp_path) -> None:
    db = tmp_path / "demo" / "ledger.sqlite"
    result = CliRunner().invoke(main, ["demo", "--db", f"sqlite:///{db}", "--orders", "80"])
    assert result.exit_code == 0, result.output
    out = result.output
    view = out[out.index("Multi-level payout view of") : out.index("Team of")]
    assert [line.split()[0] for line in view.splitlines()[3:6]] == ["1", "2", "3"]
    assert re.search(r"Team of \S+ \(the referral tree below them\)", out)
    config = re.search(r"LEDGER_CONFIG=(\S+) \.venv/bin/ledger serve --db sqlite:///(\S+)", out)
    assert config is not None and config.group(2) == str(db)
    token = out[out.index("sign in with the finance token") :].splitlines()[1].strip()
    written = Path(config.group(1)).read_text()
    line = next(x for x in written.splitlines() if x.startswith("LEDGER_"))
    tokens = TokenBook.parse(line.split("=", 1)[1])
    assert tokens.role_of(token) == "finance" and token not in written

    app = mount(create_app(open_store(f"sqlite:///{db}"), tokens))
    with TestClient(app) as client:
        assert dashboard_login(client, token).status_code == 303
        signed_in = client.get("/dashboard/")
        assert signed_in.status_code == 200 and 'id="balances"' in signed_in.text
        assert client.get("/api/v1/balances", headers={"Authorization": f"Bearer {token}"}).json()[
            "items"
        ]


def test_the_demos_db_is_a_url_like_every_commands(tmp_path) -> None:
    """A path where a URL belongs is refused with the URL to type, and nothing is made
    (it once created a folder named ``sqlite:``)."""
    folder = tmp_path / "here"
    folder.mkdir()
    for value, hint in (
        (str(folder / "ledger.sqlite"), f"sqlite:///{folder / 'ledger.sqlite'}"),
        ("postgresql://u@h/db", "sqlite:///PATH"),
        ("sqlite://", "sqlite:///PATH"),
    ):
        result = CliRunner().invoke(main, ["demo", "--db", value, "--orders", "1"])
        assert result.exit_code == 2 and hint in result.output, result.output
    assert list(folder.iterdir()) == []


def test_the_token_a_demo_printed_keeps_working_on_the_next_run(tmp_path) -> None:
    db = tmp_path / "demo" / "ledger.sqlite"

    def run_once() -> str:
        args = ["demo", "--db", f"sqlite:///{db}", "--orders", "20", "--overwrite"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        out = result.output
        return out[out.index("sign in with the finance token") :].splitlines()[1].strip()

    first = run_once()
    second = run_once()
    config = (db.parent / "api.env").read_text()
    line = next(x for x in config.splitlines() if x.startswith("LEDGER_API_TOKENS="))
    tokens = TokenBook.parse(line.split("=", 1)[1])
    assert first != second
    assert tokens.role_of(first) == tokens.role_of(second) == "finance"
    assert first not in config and second not in config  # only their hashes
