"""The scripts of the commands users give, run with bash as a VM runs them: each command exactly as typed, in
a subshell of its own; the first that fails stops the rest, is named on stderr and leaves the outcome the
node reports as the VM's GuestBootstrap condition."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from vmray_operator.render.command_scripts import INITIALIZATION, SETUP, CommandKind, command_script, shown_command


def _run(kind: CommandKind, commands: list[str], directory: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The rendered script, its outcome file moved into directory, run with bash from directory."""
    outcome = directory / "state" / "setup.condition"
    script = directory / "setup.sh"
    script.write_text(command_script(dataclasses.replace(kind, outcome_file=str(outcome)), commands))
    result = subprocess.run(["bash", str(script)], cwd=directory, capture_output=True, text=True, timeout=30)
    return result, outcome


def test_commands_run_as_a_shell_runs_them_and_the_first_failure_stops_the_rest(tmp_path: Path) -> None:
    commands = [
        f"echo pinned > {tmp_path}/comment  # pin the version later",
        f"cat > {tmp_path}/heredoc <<'EOF'\nkept as written: $HOME `date` 'single' \"double\"\nEOF",
        f'echo "it\'s \\"quoted\\"" > {tmp_path}/quotes',
        f"for part in one two; do\n  printf '%s\\n' \"$part\"\ndone > {tmp_path}/multiline",
        "# pip install later-maybe",
        "cd / && export CHANGED=yes",
        f'pwd > {tmp_path}/where && echo "${{CHANGED:-unset}}" > {tmp_path}/exported',
        "test -f /nonexistent/marker || exit 7\necho not reached",
        f"touch {tmp_path}/after",
    ]
    result, outcome = _run(SETUP, commands, tmp_path)

    assert result.returncode == 7
    assert (tmp_path / "comment").read_text() == "pinned\n"
    assert (tmp_path / "heredoc").read_text() == "kept as written: $HOME `date` 'single' \"double\"\n"
    assert (tmp_path / "quotes").read_text() == 'it\'s "quoted"\n'
    assert (tmp_path / "multiline").read_text() == "one\ntwo\n"
    # each command in a shell of its own: neither cd nor export carries over to the next
    assert (tmp_path / "where").read_text() == f"{tmp_path}\n"
    assert (tmp_path / "exported").read_text() == "unset\n"
    assert not (tmp_path / "after").exists()
    failure = "setup command 8 of 9 failed with exit status 7: test -f /nonexistent/marker || exit 7"
    assert f"vmray: {failure}\n" in result.stderr
    assert "not reached" not in result.stdout
    assert outcome.read_text() == f"false,SetupCommandFailed,{failure}\n"


def test_success_is_an_outcome_too(tmp_path: Path) -> None:
    result, outcome = _run(INITIALIZATION, ["true", "echo done"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert outcome.read_text() == "true,InitializationSucceeded,2 of 2 initialization commands succeeded\n"


def test_a_multi_line_command_stops_at_its_first_failing_line(tmp_path: Path) -> None:
    result, outcome = _run(SETUP, [f"false\ntouch {tmp_path}/second-line"], tmp_path)
    assert result.returncode == 1
    assert not (tmp_path / "second-line").exists()
    assert outcome.read_text() == "false,SetupCommandFailed,setup command 1 of 1 failed with exit status 1: false\n"


def test_commands_that_are_not_valid_bash_run_none_and_say_so(tmp_path: Path) -> None:
    result, outcome = _run(INITIALIZATION, [f"touch {tmp_path}/first", 'echo "never closed'], tmp_path)
    assert result.returncode == 2
    assert not (tmp_path / "first").exists()
    assert "unexpected EOF" in result.stderr
    reason, message = outcome.read_text().split(",", 2)[1:]
    assert reason == "InitializationCommandFailed"
    assert message == "the initialization commands are not valid bash; none of them ran\n"


def test_no_commands_succeed_at_once(tmp_path: Path) -> None:
    result, outcome = _run(SETUP, [], tmp_path)
    assert result.returncode == 0
    assert outcome.read_text() == "true,SetupSucceeded,0 of 0 setup commands succeeded\n"


def test_messages_name_a_command_by_its_first_line_kept_short() -> None:
    assert shown_command("\n  pip install torch  # pinned\npip install ray\n") == "pip install torch  # pinned"
    long = "pip install " + " ".join(f"package-{i}" for i in range(20))
    shown = shown_command(long)
    assert len(shown) == 60
    assert shown == long[:57] + "..."
    assert shown_command("printf 'a\tb'") == "printf 'a b'"  # one printable line, whatever was typed
