"""The README tells the truth: its commands exist, accept the flags shown, and CI runs its test command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from pyro_dvae.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[list[str]]:
    """Every `pyro-dvae ...` command line inside the README's bash code blocks (and every
    `torchrun ... -m pyro_dvae ...`), as argv lists."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:1] == ["pyro-dvae"]:
                    commands.append(words[1:])
                elif words[:1] == ["torchrun"] and "pyro_dvae" in words:
                    commands.append(words[words.index("pyro_dvae") + 1:])
    return commands


def resolve(argv: list[str]) -> tuple[click.Command, list[str]]:
    """The (sub)command an argv reaches, and the arguments left for it."""
    command: click.Command = main
    while isinstance(command, click.Group) and argv and argv[0] in command.commands:
        command, argv = command.commands[argv[0]], argv[1:]
    return command, argv


def test_readme_shows_every_top_level_command():
    shown = {argv[0] for argv in readme_commands()}
    assert set(main.commands) <= shown, f"commands missing from the README: {set(main.commands) - shown}"


@pytest.mark.parametrize("argv", readme_commands(), ids=" ".join)
def test_readme_command_parses(argv):
    command, rest = resolve(argv)
    # A group runs only if it has something to do without a subcommand (`pyro-dvae pretrained`).
    assert not isinstance(command, click.Group) or command.invoke_without_command, \
        f"{argv} names a group, not a command"
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{' '.join(argv)}: {word} is not an option of {command.name}"
    # Click itself accepts the line (types and choices), without running the command.
    ctx = command.make_context(command.name, list(rest), resilient_parsing=False)
    ctx.close()


def test_train_flags_listed_in_prose_exist():
    prose = re.search(r"`train` takes (.*?);", README, flags=re.S).group(1)
    flags = re.findall(r"--[a-z-]+", prose)
    known = {opt for param in main.commands["train"].params for opt in param.opts}
    assert flags and set(flags) <= known


def test_ci_runs_the_readme_test_command():
    test_line = next(line for line in README.splitlines() if "# the tests" in line)
    test_command = test_line.split("#")[0].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
