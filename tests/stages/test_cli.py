"""The ``llmd4rec`` console script exposes every pipeline stage."""

from __future__ import annotations

from typer.testing import CliRunner

from stages.cli import app


def test_every_stage_is_a_subcommand() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("kcore", "train-crm", "evaluate"):
        assert command in result.stdout


def test_stage_error_through_cli_is_one_line() -> None:
    result = CliRunner().invoke(app, ["train-crm", "--model", "nope"])
    assert result.exit_code == 2
    assert result.stderr == "error: --model: unknown model 'nope'; choose one of sasrec, gru4rec\n"
