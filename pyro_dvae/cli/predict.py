"""`pyro-dvae predict` and `pyro-dvae train-predictor`: video prediction in latent space."""

from __future__ import annotations

from pathlib import Path

import click

from .train import SEED


@click.command("train-predictor")
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--steps", type=click.IntRange(min=1), help="Training steps of the predictor (default 2000).")
@click.option("--max-minutes", type=click.FloatRange(min=0), help="Wall-clock budget; 0 for none.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Windows per step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Adam learning rate.")
@click.option("--window", type=click.IntRange(min=2, max=10_000),
              help="Frames per training window [default: 15, or the data's sequence length].")
@click.option("--hidden", type=click.IntRange(min=1, max=8192), default=128, show_default=True, help="LSTM width.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed (weights, windows).")
@click.option("--deterministic/--stochastic", default=True, show_default=True,
              help="Predict z_t+1 itself (squared error, as DrNet's predictor), or a Gaussian over it that "
                   "prediction samples from (keeps the action less often: docs/results.md).")
@click.option("--resume", is_flag=True, help="Continue the run's predictor to --steps.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_predictor_command(run_dir, steps, max_minutes, batch_size, lr, window, hidden, seed, deterministic, resume,
                            device, quiet):
    """Train a latent predictor on a trained RUN (second stage; for the dvae and drnet families)."""
    import dataclasses

    from ..config import TrainConfig
    from ..prediction.predictor import default_predictor_config, resume_predictor, train_predictor
    from ..runs import load_run

    run = load_run(run_dir, device)
    run.writable("train a latent predictor")
    if resume:
        predictor = resume_predictor(run, steps, max_minutes, progress=not quiet)
    else:
        train = TrainConfig(steps=steps or 2000, batch_size=batch_size, lr=lr, seed=seed, log_every=50,
                            eval_every=500, checkpoint_every=500, eval_batches=2, max_minutes=max_minutes or 0.0,
                            device=device)
        predictor_cfg = default_predictor_config(run)
        predictor_cfg = dataclasses.replace(predictor_cfg, hidden=hidden, window=window or predictor_cfg.window,
                                            stochastic=not deterministic)
        predictor = train_predictor(run, train, predictor_cfg, progress=not quiet)
    kind = "stochastic" if predictor.cfg.stochastic else "deterministic"
    click.echo(f"done: {kind} predictor at step {predictor.step} in {run.path / 'predictor.pt'}")


@click.command("predict")
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--context", type=click.IntRange(min=1, max=10_000),
              help="Context frames [default: 3 Sprites, 5 otherwise].")
@click.option("--horizon", type=click.IntRange(min=0, max=10_000),
              help="Frames to predict [default: 5 Sprites, 10 otherwise].")
@click.option("--samples", type=click.IntRange(min=1, max=1000), default=5, show_default=True,
              help="Predictions per sequence (stochastic families: the mean and the best are reported).")
@click.option("--limit", type=click.IntRange(min=1), help="Predict only the first N test sequences.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [default: RUN/prediction].")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds every random choice.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def predict_command(run_dir, context, horizon, samples, limit, out, seed, device):
    """Predict the test sequences of RUN in latent space: figures, per-step PSNR/SSIM, judge scores (JSON)."""
    from ..prediction.forecast import predict_report
    from ..runs import describe, load_run

    run = load_run(run_dir, device)
    predict_report(run, out or run.output_dir("prediction"), context, horizon, samples, seed, limit, log=click.echo)
    click.echo(f"read {describe(run)}")
