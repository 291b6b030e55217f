"""Which dynamic codes decode to the right attributes? A DVAE run's posterior f of Sprites test
sequences decoded with z from several sources, read by the judge (sequence-level accuracy, the
protocol's "f kept, z resampled" heads).

If z from real frames of other sequences keeps skin and pants but z drawn from p(z | f) does not,
the prior draws poses the decoder (or the judge) does not know, and the fix is in p(z | f), not the
decoder. A two-stage p(z | f) (`fitted-aggregate`) is shown both as fitted and as it trained.

    python benchmarks/diagnostics/z_sources.py runs/quality-dvae-*/seed0 --sequences 1024
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine, sprites_posterior  # noqa: E402

from pyro_dvae import posterior
from pyro_dvae.data.sprites import ATTRIBUTES, sprites_eval_sequences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a DVAE run on Sprites")
    parser.add_argument("--sequences", type=int, default=1024, help="first N test sequences (default 1024)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = min(args.sequences, len(sprites_eval_sequences("test").attrs))
    model, judge, labels, f, z, rng = sprites_posterior(args.run, "test", slice(0, n), args.seed)
    with torch.no_grad():
        frames = z.shape[1]
        sources = {
            "posterior means (reconstructions)": z,
            "p(z | f), the run's prior": model.sample_dynamics(f, frames),
            "posterior means of random frames of other sequences":
                z.flatten(0, 1)[torch.randint(n * frames, (n, frames), generator=rng, device=z.device)],
        }
        if getattr(model.z_prior, "is_fitted", False):
            model.z_prior.is_fitted = False
            sources["p(z | f) as trained (before the fit)"] = model.sample_dynamics(f, frames)
            model.z_prior.is_fitted = True
        rows = []
        for name, codes in sources.items():
            probs, _ = judge.sprites(posterior.decode(model, f, codes))
            rows.append((name, (probs.argmax(-1) == labels).float().mean(0).tolist()))
    print(f"machine: {machine()}; run {args.run}; {n} test sequences x {frames} frames, evaluation seed {args.seed}\n")
    print("| z from | " + " | ".join(ATTRIBUTES) + " |")
    print("|---|" + "---|" * len(ATTRIBUTES))
    for name, accuracy in rows:
        print(f"| {name} | " + " | ".join(f"{100 * a:.1f}%" for a in accuracy) + " |")


if __name__ == "__main__":
    main()
