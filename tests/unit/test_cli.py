"""The command line as people type it: --version, the common options before or after the command, and errors
as one line on stderr (a traceback only with --debug)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from vmray_operator import cli

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def vmray_operator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmray_operator.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_version_names_the_package_ray_and_kopf() -> None:
    ray = next(r for r in PROJECT["optional-dependencies"]["ray"] if r.startswith("ray"))
    kopf = next(r for r in PROJECT["dependencies"] if r.startswith("kopf=="))
    for args in (["--version"], ["run", "--version"]):
        done = vmray_operator(*args)
        assert done.returncode == 0, done.stderr
        (line,) = done.stdout.splitlines()
        assert line.startswith(f"vmray-operator {PROJECT['version']} ")
        assert f"Ray {ray.split('==')[1]}" in line
        assert f"kopf {kopf.split('==')[1]}" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "--log-format", "json", "--debug", "local", "status", "--dir", "/x"],
        ["local", "--log-level", "DEBUG", "--debug", "status", "--log-format", "json", "--dir", "/x"],
        ["local", "status", "--dir", "/x", "--log-format=json", "--log-level=Debug", "--debug"],
    ],
)
def test_common_options_go_anywhere(argv: list[str]) -> None:
    args = cli.parser().parse_args(argv)
    assert (args.log_level, args.log_format, args.debug, args.dir) == ("DEBUG", "json", True, "/x")
    assert args.func is cli._local_status


def test_an_option_before_the_command_is_not_reset_by_it() -> None:
    args = cli.parser().parse_args(["--log-format", "json", "run", "--metrics-port", "0"])
    assert (args.log_format, args.debug, args.log_level) == ("json", False, None)


def test_log_level_comes_from_the_option_then_debug_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMRAY_LOG_LEVEL", "WARNING")
    assert cli._log_level(cli.parser().parse_args(["run"])) == "WARNING"
    assert cli._log_level(cli.parser().parse_args(["run", "--debug"])) == "DEBUG"
    assert cli._log_level(cli.parser().parse_args(["run", "--debug", "--log-level", "error"])) == "ERROR"
    monkeypatch.delenv("VMRAY_LOG_LEVEL")
    assert cli._log_level(cli.parser().parse_args(["run"])) == "INFO"


def test_an_error_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    done = vmray_operator("run", "--kubeconfig", str(missing), "--metrics-port", "0", "--liveness", "")
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert re.fullmatch(r"vmray-operator: error: .*kube-config.* \(--debug shows the traceback\)", line), line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    done = vmray_operator("run", "--kubeconfig", str(missing), "--metrics-port", "0", "--liveness", "", "--debug")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "ConfigException" in done.stderr


def test_a_misspelt_option_value_is_a_usage_error() -> None:
    done = vmray_operator("local", "status", "--log-level", "verbose")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "invalid choice: 'VERBOSE'" in done.stderr.splitlines()[-1]
