"""A systemd service unit as the simulator plays systemd for it: the commands to start and stop it and
whether and when it is started again."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


@dataclass(frozen=True)
class ExecCommand:
    argv: list[str]
    ignore_failure: bool  # the `-` prefix: a failure does not stop the unit's start


@dataclass(frozen=True)
class ServiceUnit:
    start_pre: list[ExecCommand]
    start: ExecCommand
    stop: list[ExecCommand]
    restart: str  # Restart=: no, always, on-failure, ...
    restart_sec: float
    timeout_stop_sec: float

    def restarts_after(self, exit_code: int) -> bool:
        return self.restart == "always" or (self.restart in ("on-failure", "on-abnormal") and exit_code != 0)


def _seconds_per(unit: str) -> float:
    if unit in ("ms", "msec"):
        return 0.001
    if unit.startswith("m"):
        return 60.0
    if unit.startswith("h"):
        return 3600.0
    return 1.0  # no unit, s, sec, seconds


def time_span(text: str) -> float:
    """Seconds of a systemd time span: "5", "5s", "500ms", "1min 30s"."""
    return sum(float(number) * _seconds_per(unit) for number, unit in _SPAN.findall(text))


def _exec(value: str) -> ExecCommand:
    ignore = False
    while value and value[0] in "-@+!:":  # systemd's prefixes; only `-` changes what the simulator does
        ignore = ignore or value[0] == "-"
        value = value[1:]
    return ExecCommand(shlex.split(value), ignore)


def parse_unit(text: str) -> ServiceUnit:
    section = ""
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())

    def last(key: str, default: str) -> str:
        return values.get(key, [default])[-1]

    if "ExecStart" not in values:
        raise ValueError("the unit has no ExecStart")
    return ServiceUnit(
        start_pre=[_exec(v) for v in values.get("ExecStartPre", [])],
        start=_exec(last("ExecStart", "")),
        stop=[_exec(v) for v in values.get("ExecStop", [])],
        restart=last("Restart", "no"),
        restart_sec=time_span(last("RestartSec", "100ms")),
        timeout_stop_sec=time_span(last("TimeoutStopSec", "90s")),
    )
