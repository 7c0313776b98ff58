"""Tests of the ``reservoir-rl`` command line basics (reservoir_rl.cli.app through Typer's CliRunner).

``--version`` and ``--help``, and the contract for user errors: one line on stderr, exit code 2, no
traceback, nothing written (``--debug`` keeps the exception). No training is run here.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from reservoir_rl import __version__
from reservoir_rl.cli import app
from reservoir_rl.errors import ConfigError

COMMANDS = ("train", "resume", "evaluate", "plot", "inspect-checkpoint", "init", "flood-zone", "export", "tune")


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner(env={"RESERVOIR_RL_DEBUG": None, "COLUMNS": "80"})


def assert_one_line_user_error(result, expected: str) -> None:
    """Exit code 2, nothing on stdout, exactly one line on stderr that holds ``expected``, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"reservoir-rl {__version__}"


def test_help_lists_the_commands(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout, command
    assert "--version" in result.stdout


def test_train_help_shows_the_options(runner):
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for option in ("--set", "--seed", "--runs-dir", "--name", "--quiet"):
        assert option in result.stdout, option


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_boolean_options_are_shown_as_flags(runner, command):
    """Help shows ``--quiet``, ``--json``, ``--force``, ``--help`` as flags, never ``--quiet <bool>``."""
    result = runner.invoke(app, [*([command] if command else []), "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout and "--help" in result.stdout


def test_a_flag_takes_no_value(runner, tmp_path):
    """``--json true``: the flag takes no value, so "true" is not read as one (here it is the checkpoint)."""
    result = runner.invoke(app, ["inspect-checkpoint", "--json", "true", "--runs-dir", str(tmp_path)])
    assert_one_line_user_error(result, "unknown run 'true'")


def test_shell_completion_is_available(runner, monkeypatch):
    # the shell named on the command line (Typer reads this variable when it builds the command; without it,
    # Typer detects the shell from the process tree, which a test process does not have)
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    result = runner.invoke(app, ["--show-completion", "bash"])
    assert result.exit_code == 0 and "complete " in result.stdout and "_RESERVOIR_RL_COMPLETE" in result.stdout, result.output


def test_train_with_a_missing_config_file(runner, tmp_path):
    missing = tmp_path / "missing.yaml"
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(missing), "--runs-dir", str(runs)])
    assert_one_line_user_error(result, f"{missing}: config file not found")
    assert not runs.exists()  # nothing written


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.lrr=0.1", "unknown key 'train.lrr' (= 0.1); did you mean 'lr'?"),
        ("envv.horizon_days=10", "unknown key 'envv'"),
        ("env.horizon_days=0", "env.horizon_days = 0: Input should be greater than or equal to 1"),
        ("no_equals_sign", "--set 'no_equals_sign': expected section.key=value"),
    ],
)
def test_train_with_a_bad_set_override(runner, tmp_path, override, expected):
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  total_frames: 100\n", encoding="utf-8")
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(config), "--set", override, "--runs-dir", str(runs)])
    assert_one_line_user_error(result, expected)
    assert not runs.exists()


def test_a_long_error_stays_on_one_line(runner, tmp_path):
    deep = tmp_path.joinpath(*(["a_rather_long_folder_name"] * 6))
    deep.mkdir(parents=True)
    result = runner.invoke(app, ["train", str(deep / "missing_config_with_a_long_name.yaml")])
    assert_one_line_user_error(result, "missing_config_with_a_long_name.yaml: config file not found")


def test_debug_keeps_the_exception(runner, tmp_path):
    result = runner.invoke(app, ["--debug", "train", str(tmp_path / "missing.yaml")])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)


def test_no_arguments_shows_the_usage(runner):
    result = runner.invoke(app, [])
    assert result.exit_code != 0
    assert "Usage" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "configs/base.yaml", "--seed", "x"], "reservoir-rl train: Invalid value for '--seed'"),
        (["train"], "reservoir-rl train: Missing argument 'config'"),
        (["train", "configs/base.yaml", "--bogus"], "No such option: --bogus"),
        (["trian"], "No such command 'trian'"),
        (["evaluate", "x.pt", "--episodes", "many"], "Invalid value for '--episodes'"),
        (["plot", "run-1", "--format"], "reservoir-rl plot: Option '--format' requires an argument"),
        (["--bogus"], "reservoir-rl: No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line(runner, tmp_path, args, expected):
    result = runner.invoke(app, args)
    assert_one_line_user_error(result, expected)
    assert "╭" not in result.stderr  # no boxed multi-line panel


def test_square_brackets_in_an_error_are_printed(runner, tmp_path):
    """Rich markup must not swallow bracketed text such as an extra's name (reservoir-rl[ray])."""
    missing = tmp_path / "[draft] config.yaml"
    result = runner.invoke(app, ["train", str(missing)])
    assert_one_line_user_error(result, "[draft] config.yaml: config file not found")
