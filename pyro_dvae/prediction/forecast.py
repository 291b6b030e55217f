"""Video prediction in latent space for every family, its metrics, and ``pyro-dvae predict``'s report.

The context frames are encoded (f from the context alone, z_t per frame), the dynamic codes are
rolled forward with f held fixed — by DSA's own LSTM prior, or by the run's latent predictor
(:mod:`.predictor`) for the DVAE and DrNet — and decoded. Pixels are never fed back.

Metrics per predicted step against the ground truth: PSNR and SSIM; for stochastic predictions
(DSA; the DVAE's Gaussian predictor) both the mean over S samples and the best of them (the
sample with the highest mean SSIM over the horizon, per sequence). With a judge: the action
accuracy of the Sprites sequence [reconstructed context, predicted frames], and the accuracy of
the static attributes (Sprites) or the digit (one-digit Moving MNIST) in every predicted frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from .. import plotting
from ..atomic import write_text_atomic
from ..errors import UserInputError
from ..evaluation.judges import default_settings, get_judge
from ..evaluation.metrics import mse_per_frame, psnr, ssim
from ..evaluation.protocol import protocol_for
from ..models.base import SequenceModel
from ..reports.core import Log, Report, _silent, output_folder, seeded
from ..runs import Run
from .predictor import load_predictor

ROLLOUT_FRAMES = 120


def dynamics_predictor(run: Run) -> tuple[Callable[[Tensor, Tensor, int], Tensor], bool]:
    """``predict(z_context, f, horizon) -> z`` for the run (the family's own, or its latent
    predictor), and whether its predictions are random draws."""
    if run.model.can("predict_dynamics"):
        return run.model.predict_dynamics, True
    predictor = load_predictor(run)
    return predictor.rollout, predictor.cfg.stochastic


@torch.no_grad()
def forecast(model: SequenceModel, predict: Callable[[Tensor, Tensor, int], Tensor], x_context: Tensor,
             horizon: int, samples: int = 1, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Predicted frames after a context.

    Returns the reconstruction of the context (B, K, C, S, S) and ``samples`` predictions of the
    next ``horizon`` frames (samples, B, horizon, C, S, S); with horizon 0 only the former matters.
    """
    if x_context.shape[1] < model.min_frames:
        raise UserInputError(f"the context has {x_context.shape[1]} frames but the model reads at least "
                             f"{model.min_frames}; pass --context {model.min_frames} or more")
    f, z = model.encode(x_context, generator)
    context = model.decode(f, z)
    draws = [model.decode(f, predict(z, f, horizon)) for _ in range(samples)]
    return context, torch.stack(draws)


def _per_step(values: Tensor) -> list[float]:
    """(..., H) -> the mean over everything but the last dimension, as a list of H floats."""
    return values.reshape(-1, values.shape[-1]).mean(0).tolist()


def prediction_metrics(predicted: Tensor, truth: Tensor) -> dict[str, list[float]]:
    """PSNR and SSIM per step: mean over samples and best sample (per sequence, by mean SSIM).

    predicted (S, B, H, C, H, W), truth (B, H, C, H, W).
    """
    target = truth.expand_as(predicted)
    p, s = psnr(mse_per_frame(predicted, target)), ssim(predicted, target)  # (S, B, H)
    best = s.mean(-1).argmax(0)  # (B,)
    rows = torch.arange(best.shape[0], device=best.device)
    return {"psnr_mean": _per_step(p), "ssim_mean": _per_step(s),
            "psnr_best": _per_step(p[best, rows]), "ssim_best": _per_step(s[best, rows])}


def predict_report(run: Run, out: str | Path, context: int | None = None, horizon: int | None = None,
                   samples: int = 5, seed: int = 0, limit: int | None = None, batch_size: int = 64,
                   judge=None, log: Log = _silent) -> Path:
    """Predict the test sequences of a run; write figures, ``prediction.json`` and ``index.md``.

    ``context`` and ``horizon`` default to the field's settings for the run's data (its protocol's:
    Sprites 3 -> 5 of the 8-frame test sequences, Moving MNIST 5 -> 10)."""
    protocol = protocol_for(run)
    default_k, default_h = protocol.prediction
    context, horizon = context or default_k, default_h if horizon is None else horizon
    if context < 1 or horizon < 0 or samples < 1:
        raise UserInputError("--context must be >= 1, --horizon >= 0 and --samples >= 1")
    predict, stochastic = dynamics_predictor(run)
    samples = samples if stochastic else 1
    x, labels = protocol.test_sequences(run, context + horizon, limit)
    out = output_folder(out)
    if protocol.judge_predictions is None:
        judge = None
    elif judge is None:
        judge = get_judge(default_settings(protocol.judge.name), run.device, progress=False)
    if judge is not None:
        judge.to(run.device)
    log(f"predicting {len(x)} test sequences: {context} context -> {horizon} frames, {samples} sample(s)")
    metrics: dict[str, list] = {}
    with seeded(seed, run.device) as generator:
        for start in range(0, len(x), batch_size):
            rows = slice(start, start + batch_size)
            recon, predicted = forecast(run.model, predict, x[rows, :context], horizon, samples, generator)
            batch = prediction_metrics(predicted, x[rows, context:]) if horizon else {}
            if judge is not None and horizon:  # the first sample's predictions
                batch.update(protocol.judge_predictions(judge, recon, predicted[0],
                                                        {k: v[rows] for k, v in labels.items()}))
            for key, value in batch.items():
                metrics.setdefault(key, []).append((value, predicted.shape[1]))
        report = {"run": str(run.path), "step": run.step, "model": run.config.model.family,
                  "context": context, "horizon": horizon, "samples": samples, "stochastic": bool(stochastic),
                  "n_sequences": len(x), "seed": seed, "metrics": _weighted(metrics)}
        write_text_atomic(out / "prediction.json", json.dumps(report, indent=2) + "\n")
        pages = Report(out, f"Prediction with {run.path} (step {run.step})",
                       {k: report[k] for k in ("run", "step", "model", "context", "horizon", "samples")})
        _figures(run, pages, predict, x[:6], context, horizon, samples, generator)
    pages.write()
    log(f"wrote {out / 'prediction.json'} and {len(pages.figures)} figures")
    return out / "prediction.json"


def _weighted(metrics: dict[str, list]) -> dict:
    """Batch results averaged with their batch sizes (lists elementwise, dicts per key)."""
    def combine(values):
        first = values[0][0]
        if isinstance(first, dict):
            return {k: combine([(v[k], n) for v, n in values]) for k in first}
        total = sum(n for _, n in values)
        if isinstance(first, list):
            return [sum(v[i] * n for v, n in values) / total for i in range(len(first))]
        return sum(v * n for v, n in values) / total

    return {key: combine(values) for key, values in metrics.items()}


def _figures(run: Run, report: Report, predict, x: Tensor, context: int, horizon: int, samples: int,
             generator: torch.Generator) -> None:
    model = run.model
    recon, predicted = forecast(model, predict, x[:, :context], horizon, min(samples, 3), generator)
    rows, labels = [], []
    for i in range(len(x)):
        rows.append(x[i])
        labels.append(f"seq {i}: truth")
        for s in range(predicted.shape[0]):
            rows.append(torch.cat([recon[i], predicted[s, i]]))
            labels.append(f"predicted {s}")
    report.figure("predictions", plotting.frames_grid(
        torch.stack(rows), f"{context} context frames (reconstructed) then {horizon} predicted", row_labels=labels),
        f"Each block: a held-out sequence (truth), then predictions: the first {context} frames reconstructed "
        f"from the context, the next {horizon} decoded from predicted dynamic codes (f fixed).")
    _, long = forecast(model, predict, x[:2, :context], ROLLOUT_FRAMES, 1, generator)
    strip = long[0].reshape(2 * ROLLOUT_FRAMES // 20, 20, *long.shape[-3:])
    report.figure("rollout", plotting.frames_grid(
        strip, f"{ROLLOUT_FRAMES} predicted frames of two sequences (rows of 20)"),
        f"Generating forever: {ROLLOUT_FRAMES} frames predicted after the context of two held-out sequences "
        f"(first {ROLLOUT_FRAMES // 20} rows: the first sequence), latent codes fed back at every step.")


__all__ = ["dynamics_predictor", "forecast", "predict_report", "prediction_metrics"]
