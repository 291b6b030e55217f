"""The `pyro-dvae` command line: thin wrappers that parse, call the library and report."""

from __future__ import annotations

import signal
import threading
import warnings

import click
import matplotlib

from .. import __version__
from ..errors import PyroDVAEError


class _Group(click.Group):
    """Turns the library's user-facing errors, the operating system's refusals (a path that cannot
    be written or read) and Ctrl-C outside a training loop into a one-line message and an exit code."""

    def invoke(self, ctx: click.Context):
        from ..distributed import QuietExit, reports_errors
        from ..errors import TrainingFailed

        try:
            return super().invoke(ctx)
        except PyroDVAEError as err:
            message, exit_code = str(err), err.exit_code
            # Under torchrun rank 0 says what every rank would (one message, not one per process);
            # another rank speaks only when it saw a peer fail.
            if isinstance(err, QuietExit) or not (reports_errors() or isinstance(err, TrainingFailed)):
                ctx.exit(exit_code)
        except OSError as err:
            where = f" {err.filename}" if err.filename else ""
            message, exit_code = f"cannot use{where}: {err.strerror or err}; check the path and its permissions", 1
        except KeyboardInterrupt:
            message, exit_code = "interrupted; files are written atomically, so none is left half-written", 130
        failure = click.ClickException(message)
        failure.exit_code = exit_code
        raise failure from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyro-dvae")
def main() -> None:
    """Learn disentangled static (f) and dynamic (z) codes from unordered frame sets."""
    warnings.showwarning = _show_warning
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        # Past a file-size limit (ulimit -f) a write then fails with EFBIG, which is reported and
        # leaves the last checkpoint intact, instead of the signal killing the process mid-write.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The package's data warnings as people read them: the message alone, no source location."""
    from ..errors import DataWarning

    if issubclass(category, DataWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


# The CLI only writes figures to files; Agg needs no display (set before any figure exists).
matplotlib.use("Agg")


def _register() -> None:
    # Each command lives in its own module; this is the one place that lists them.
    from .data import data_group
    from .evaluate import evaluate_command, judge_group
    from .inspect import inspect_command, sample_command
    from .predict import predict_command, train_predictor_command
    from .pretrained import pretrained_group
    from .train import train_command

    main.add_command(train_command)
    main.add_command(data_group)
    main.add_command(evaluate_command)
    main.add_command(judge_group)
    main.add_command(sample_command)
    main.add_command(inspect_command)
    main.add_command(train_predictor_command)
    main.add_command(predict_command)
    main.add_command(pretrained_group)


_register()
