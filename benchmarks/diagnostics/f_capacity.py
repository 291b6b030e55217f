"""How much the codes of trained runs carry: nats per set in f and per frame in z, active dimensions.

For each run, draws ``--sets`` test examples exactly as training does (N frames of a set for the
DVAE, a window of T frames for DSA) and measures, with the run's guide:

- KL(q(f | x) || N(0, I)) per set, in closed form: the rate the static code pays under the training
  prior of the ``cpu`` preset (N(0, I); its fitted flow only replaces it after training). A dimension
  is *active* when its mean KL over the sets exceeds ``--active`` nats (0.1: a posterior that moves
  less than about half a prior standard deviation from set to set carries nothing the decoder uses);
- KL(q(z_t | f, x) || p(z_t | f, z_<t)) per frame, estimated with one draw of z per frame (f at its
  posterior mean).

This is the diagnostic behind docs/ablation.md's "8 of 64 dimensions active, 13-17 nats per set":

    python benchmarks/diagnostics/f_capacity.py runs/quality-dvae-*/seed0 runs/quality-dvae-*/seed1
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from pyro_dvae import load_run


@torch.no_grad()
def capacity(folder: Path, n_sets: int, seed: int, active: float) -> dict:
    run = load_run(folder)
    model, frames = run.model, run.config.model.frames
    data = run.data("test")
    generator = torch.Generator(device=run.device).manual_seed(seed)
    draw = data.sample_windows if model.ordered else data.sample
    x = draw(n_sets, frames, generator)
    loc, scale = model.encode_static(x, generator)
    standard = torch.distributions.Normal(torch.zeros_like(loc), torch.ones_like(scale))
    kl_f = torch.distributions.kl_divergence(torch.distributions.Normal(loc, scale), standard)  # (sets, f_dim)
    per_dim = kl_f.mean(0)
    torch.manual_seed(seed)
    z_loc, z_scale = model.encode_dynamic(x, loc)
    posterior = torch.distributions.Normal(z_loc, z_scale)
    z = posterior.sample()
    kl_z = posterior.log_prob(z).sum(-1) - model.dynamics_prior(loc, z).log_prob(z)
    top = per_dim.sort(descending=True).values
    return dict(run=str(folder), step=run.step, f_kl_weight=run.config.train.f_kl_weight,
                per_set=kl_f.sum(-1).tolist(), active=int((per_dim > active).sum()), f_dim=loc.shape[-1],
                top=top[:5].tolist(), kl_z=kl_z.mean().item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories (DVAE or DSA)")
    parser.add_argument("--sets", type=int, default=256, help="test examples per run (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--active", type=float, default=0.1, help="nats above which a dimension is active")
    args = parser.parse_args()
    print(f"{args.sets} test examples per run, seed {args.seed}; KL of f against N(0, I), "
          f"active: mean KL > {args.active} nats\n")
    print("| run | step | beta_f | KL_f nats/set (mean ± std) | active dims of f | 5 largest dims (nats) "
          "| KL_z nats/frame |")
    print("|---|---|---|---|---|---|---|")
    for folder in args.runs:
        r = capacity(folder, args.sets, args.seed, args.active)
        top = ", ".join(f"{v:.1f}" for v in r["top"])
        print(f"| {r['run']} | {r['step']} | {r['f_kl_weight']:g} | {statistics.mean(r['per_set']):.1f} ± "
              f"{statistics.stdev(r['per_set']):.1f} | {r['active']} of {r['f_dim']} | {top} | {r['kl_z']:.2f} |")


if __name__ == "__main__":
    main()
