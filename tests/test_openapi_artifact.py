"""The committed `openapi.json` is what `todo-api openapi` generates today."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from todo_api.cli import app

COMMITTED = Path(__file__).resolve().parent.parent / "openapi.json"


def test_committed_openapi_json_is_current(tmp_path: Path) -> None:
    generated = tmp_path / "openapi.json"
    result = CliRunner().invoke(app, ["openapi", "--output", str(generated)])
    assert result.exit_code == 0, result.output
    assert COMMITTED.read_text() == generated.read_text(), (
        "openapi.json is stale: run `uv run todo-api openapi --output openapi.json`"
    )
