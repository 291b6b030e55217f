"""How much of the digit a one-digit Moving MNIST run's static code carries: a linear probe on f.

For each run, infers f's posterior mean for training and test sequences as `pyro-dvae evaluate`
does (8 frames per sequence; the DVAE averages q(f | x_S) over random N-frame subsets), fits a
softmax regression from the standardised means to the digit class on the training sequences and
reports its accuracy on both. Set next to the evaluation's "digit read from reconstructions", it
says whether the digit is lost in f or in the decoder. Diagnostic behind docs/ablation.md's
"Moving MNIST: what did not help at 15 minutes":

    python benchmarks/diagnostics/digit_probe.py runs/mm-seed0 runs/mm-seed1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from pyro_dvae.evaluation.protocols import protocol_for

from pyro_dvae import load_run
from pyro_dvae.posterior import infer_static

FRAMES = 8  # frames per sequence, as the evaluation's protocol reads them


@torch.no_grad()
def static_means(run, split: str, n_sets: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = run.data(split)
    n_sets = min(n_sets, len(data))
    generator = torch.Generator(data.device).manual_seed(seed)
    means, labels = [], []
    for start in range(0, n_sets, 250):
        sets = torch.arange(start, min(start + 250, n_sets), device=data.device)
        frames = data.frames(sets[:, None], data.sample_frame_indices(sets, FRAMES, generator))
        means.append(infer_static(run.model, frames, generator=generator)[0])
        labels.append(data.labels[sets, 0])
    return torch.cat(means), torch.cat(labels)


def probe(folder: Path, train_sets: int, seed: int) -> tuple[int, float, float]:
    """The run's step and the probe's accuracy on training and test sequences."""
    run = load_run(folder)
    if protocol_for(run) != "moving-mnist-1":
        raise SystemExit(f"{folder}: trained on {run.config.data.source!r}; the probe needs one-digit Moving MNIST")
    run.model.eval()
    f_train, y_train = static_means(run, "train", train_sets, seed)
    f_test, y_test = static_means(run, "test", 10**9, seed + 1)
    mean, std = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
    torch.manual_seed(seed)
    linear = torch.nn.Linear(f_train.shape[1], 10)
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(500):  # full-batch: a convex problem, 500 steps reach its plateau
        optimizer.zero_grad()
        F.cross_entropy(linear(f_train), y_train).backward()
        optimizer.step()
    with torch.no_grad():
        train_acc, test_acc = (float((linear(f).argmax(1) == y).float().mean())
                               for f, y in ((f_train, y_train), (f_test, y_test)))
    return run.step, train_acc, test_acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="one-digit Moving MNIST run directories")
    parser.add_argument("--train-sets", type=int, default=5000, help="training sequences the probe is fitted on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| run | step | probe accuracy, training sequences | probe accuracy, test sequences |")
    print("|---|---|---|---|")
    for folder in args.runs:
        step, train_acc, test_acc = probe(folder, args.train_sets, args.seed)
        print(f"| {folder.name} | {step} | {100 * train_acc:.1f}% | {100 * test_acc:.1f}% |")


if __name__ == "__main__":
    main()
