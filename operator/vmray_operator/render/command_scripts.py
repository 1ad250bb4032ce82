"""The scripts that run the commands a user gives, one per purpose: the initialization commands on the VM,
the setup commands in the Ray container. Each command is written exactly as typed (comments, heredocs, quotes
and several lines behave as in a shell) and runs in a subshell of its own; the first that fails stops the
script, is named on stderr, and leaves the outcome the node reports as the VM's GuestBootstrap condition."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from vmray_operator.render.guest_paths import INITIALIZATION_OUTCOME, SETUP_OUTCOME
from vmray_operator.render.shell_templates import templates

SHOWN_LENGTH = 60  # a command in messages: its first line, at most this long


@dataclass(frozen=True)
class CommandKind:
    title: str  # the script's first comment
    noun: str  # one of its commands, in messages
    outcome_file: str
    failure_reason: str  # the GuestBootstrap reason when one of them fails
    success_reason: str


INITIALIZATION = CommandKind(
    "The initialization commands, run on the VM by cloud-init",
    "initialization command",
    INITIALIZATION_OUTCOME,
    "InitializationCommandFailed",
    "InitializationSucceeded",
)
SETUP = CommandKind(
    "The setup commands, run in the Ray container before Ray starts",
    "setup command",
    SETUP_OUTCOME,
    "SetupCommandFailed",
    "SetupSucceeded",
)


@dataclass(frozen=True)
class _Command:
    text: str
    shown: str
    runs_nothing: bool


def shown_command(command: str) -> str:
    """How messages name a command: its first line that is not blank, on one short line."""
    first = next((line.strip() for line in command.splitlines() if line.strip()), "")
    printable = "".join(c if c.isprintable() else " " for c in first)
    return printable if len(printable) <= SHOWN_LENGTH else printable[: SHOWN_LENGTH - 3] + "..."


def _runs_nothing(command: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in command.splitlines())


def command_script(kind: CommandKind, commands: Sequence[str]) -> str:
    return (
        templates()
        .get_template("commands.sh.j2")
        .render(
            kind=kind,
            count=len(commands),
            outcome_dir=posixpath.dirname(kind.outcome_file),
            commands=[_Command(c, shown_command(c), _runs_nothing(c)) for c in commands],
        )
    )
