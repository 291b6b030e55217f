"""`pyro-dvae evaluate RUN` and `pyro-dvae judge train`: disentanglement metrics and their judges."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..atomic import write_text_atomic
from ..errors import UserInputError
from .train import SEED

_JUDGE_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Repeat every random step (f subsets, prior draws, swap partners) with K seeds.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON report to write (default RUN/evaluation.json).")
@click.option("--judge", "judge_file", type=_JUDGE_FILE,
              help="Judge file from `pyro-dvae judge train --out` (default: the protocol's judge, shipped with "
                   "the package).")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N test sequences.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Sequences per forward pass.")
@click.option("--protocol", "protocol_name", metavar="DATA",
              help="Judge with the protocol of data set DATA instead of the run's own; on a run of other data it "
                   "compares with the judge's readings of the real frames (label-free), e.g. --protocol "
                   "moving-mnist for your own two-digit videos.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def evaluate_command(run_dir, seeds, out, judge_file, limit, batch_size, protocol_name, device, quiet):
    """Compute reconstruction and disentanglement metrics of a trained RUN on its test data.

    The protocol follows the run's data: Sprites (judge accuracies, IS, entropies, swaps),
    Moving MNIST (the digit pair, or the one digit, and the positions after swaps; label-free on
    the public mnist_test_seq.npy) or, for other data, the label-free metrics (ELBO, MSE, PSNR,
    f consistency). See docs/metrics.md.
    """
    from ..evaluation import evaluate_run, format_report
    from ..evaluation.judges import load_judge
    from ..runs import describe, load_run

    run = load_run(run_dir, device)
    judge = load_judge(judge_file, run.device) if judge_file else None
    report = evaluate_run(run, seeds=seeds, judge=judge, limit=limit, batch_size=batch_size, progress=not quiet,
                          protocol_name=protocol_name)
    out = out or run.output_dir("evaluation.json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    except OSError as err:
        raise UserInputError(f"cannot write {out} ({err.strerror}); pass a writable --out") from None
    click.echo(format_report(report))
    click.echo(f"wrote {out}; read {describe(run)}")


@click.group("judge")
def judge_group() -> None:
    """Train and inspect the classifiers (judges) that score generated sequences."""


@judge_group.command("train")
@click.argument("kind", default="sprites")
@click.option("--steps", type=click.IntRange(min=1),
              help="Training steps (default 1200 sprites, 1500 digits, 8000 digit-pairs).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Sequences (sprites) or frames (digits) per step.")
@click.option("--limit-identities", "--limit", "limit", type=click.IntRange(min=1),
              help="Train on the first K train identities (sprites) or sequences (digits) only.")
@click.option("--test-limit", type=click.IntRange(min=1),
              help="Measure held-out accuracy on the first K test identities / sequences only.")
@click.option("--seed", type=SEED, help="Random seed of the judge's weights and batches.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the judge to this file (for `pyro-dvae evaluate --judge`).")
@click.option("--retrain", is_flag=True, help="Train even if the cache already holds this judge.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def judge_train_command(kind, steps, batch_size, limit, test_limit, seed, out, retrain, device, quiet):
    """Train (or fetch from the cache) the KIND judge and print its held-out accuracy.

    KIND is the judge of a labelled data set: sprites (the default), digits (one-digit Moving
    MNIST) or digit-pairs (two-digit Moving MNIST), or one that an installed package declares.
    """
    from ..evaluation.judges import default_settings, get_judge, save_judge
    from ..runs import resolve_device

    settings = default_settings(kind, steps=steps, batch_size=batch_size, limit=limit, test_limit=test_limit,
                                seed=seed)
    judge = get_judge(settings, resolve_device(device), progress=not quiet, retrain=retrain)
    click.echo(f"judge {judge.key}: cached in {judge.path}")
    if out is not None:
        click.echo(f"written to {save_judge(judge, out)}")
    for size, acc in judge.report["test_accuracy"].items():
        shown = "  ".join(f"{name} {value:.4f}" for name, value in acc.items())
        click.echo(f"held-out accuracy at {size}px ({judge.report['n_test']} test sequences): {shown}")
