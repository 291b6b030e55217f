"""What the end-to-end tests share: the real command line, run in this process, and the shape of a
one-line error (exit code 1, one ``Error:`` line, no traceback)."""

from __future__ import annotations

from click.testing import CliRunner, Result

from pyro_dvae.cli import main


def invoke(*args) -> Result:
    """``pyro-dvae ARGS...`` in this process; arguments may be paths or numbers."""
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: Result, *fragments: str) -> None:
    """The command failed as bad input should: exit code 1, no traceback, and one ``Error:`` line
    that holds every fragment (the problem and its fix)."""
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert all(f in error for f in fragments), error
