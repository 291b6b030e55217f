"""Seconds per SVI step of the Pyro model/guide against the same networks in plain PyTorch.

The floor ("plain torch") computes the same one-sample ELBO estimate by hand: same networks,
same reparameterised draws, Bernoulli log-likelihood and Gaussian log densities, no Pyro. The
"pyro (trainer)" row is what `pyro-dvae train` runs (pyro_dvae.elbo.elbo_loss); "pyro Trace_ELBO"
is Pyro's own class, which reads the loss back to the host every step. Data are fixed random
frames so only the step is timed. Families other than the DVAE (``--models dsa``) have no
hand-written floor; their row is the trainer's step. Run on a quiet machine:

    python benchmarks/speed/step_time.py                 # cpu and paper presets of the DVAE
    python benchmarks/speed/step_time.py --presets cpu --steps 50 --device cuda
    python benchmarks/speed/step_time.py --models dvae dsa --presets cpu
    python benchmarks/speed/step_time.py --device cuda --presets paper   # with the fast-path rows
    python benchmarks/speed/step_time.py --data moving-mnist-1 --presets cpu

The fast-path rows (on by default with --device cuda, ``--fast-path`` elsewhere) time the trainer's
step with each option of pyro_dvae.fastpath: bf16 autocast, channels_last, torch.compile, all three.
"""

from __future__ import annotations

import argparse
import platform
import time

import pyro
import torch
import torch.nn.functional as F
from pyro.distributions import Normal
from pyro.infer import Trace_ELBO

from pyro_dvae.config import preset
from pyro_dvae.elbo import elbo_loss
from pyro_dvae.fastpath import autocast, prepare
from pyro_dvae.models import get_family
from pyro_dvae.models.dvae import DVAE
from pyro_dvae.nets import gaussian_params


def plain_torch_loss(model: DVAE, x: torch.Tensor) -> torch.Tensor:
    """The negative ELBO of the paper, one sample, written without Pyro (the floor)."""
    h = model.frame_features(x)
    f_loc, f_scale = model.static_encoder(h)
    f = (f_loc + f_scale * torch.randn_like(f_loc)).unsqueeze(1)  # (B, 1, F)
    z_loc, z_scale = model.dynamic_encoder(f, h)
    z = z_loc + z_scale * torch.randn_like(z_loc)
    p_loc, p_scale = gaussian_params(model.z_prior.net(f))
    log_lik = -F.binary_cross_entropy_with_logits(model.emitter(f, z), x, reduction="sum")
    kl_f = Normal(f_loc.unsqueeze(1), f_scale.unsqueeze(1)).log_prob(f).sum() - Normal(0.0, 1.0).log_prob(f).sum()
    kl_z = Normal(z_loc, z_scale).log_prob(z).sum() - Normal(p_loc, p_scale).log_prob(z).sum()
    return -(log_lik - kl_f - kl_z)


def time_steps(loss_fn, model: DVAE, x: torch.Tensor, steps: int, warmup: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    for i in range(warmup + steps):
        if i == warmup:
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss = loss_fn(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


VARIANTS = {
    "plain torch (floor)": plain_torch_loss,
    "pyro (trainer)": lambda m, x: elbo_loss(m.model, m.guide, x),
    "pyro Trace_ELBO": lambda m, x: Trace_ELBO().differentiable_loss(m.model, m.guide, x),
}


#: The fast path's options (pyro_dvae.fastpath), each timed on the trainer's step.
FAST_PATH = {
    "pyro (trainer) + bf16": {"precision": "bf16"},
    "pyro (trainer) + channels_last": {"channels_last": True},
    "pyro (trainer) + compile": {"compile": True},
    "pyro (trainer) + all three": {"precision": "bf16", "channels_last": True, "compile": True},
}


def fast_path_loss(train_cfg):
    def loss_fn(m, x):
        with autocast(train_cfg, x.device):
            return elbo_loss(m.model, m.guide, x)
    return loss_fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["cpu", "paper"])
    parser.add_argument("--models", nargs="+", default=["dvae"], help="model families (default: dvae)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (default: 30 cpu, 3 paper)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fast-path", action="store_true", default=None,
                        help="also time each fast-path option (default: on with a CUDA device)")
    parser.add_argument("--data", default="sprites", choices=["sprites", "moving-mnist", "moving-mnist-1"],
                        help="whose preset to time (its image channels, sizes and decoder)")
    parser.add_argument("--only", nargs="+", help="time only these variants (names as in the table)")
    args = parser.parse_args()
    if args.fast_path is None:
        args.fast_path = args.device.startswith("cuda")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"machine: {platform.node()} | device: {name} | torch threads: {torch.get_num_threads()} | "
          f"torch {torch.__version__} | pyro {pyro.__version__} | data: {args.data}\n")
    print("| model | preset | batch x frames | image | variant | s/step | frames/s | vs floor |")
    print("|---|---|---|---|---|---|---|---|")
    for family in args.models:
        variants = dict(VARIANTS if family == "dvae" else {"pyro (trainer)": VARIANTS["pyro (trainer)"]})
        variants = {name: (fn, {}) for name, fn in variants.items()}
        if args.fast_path:
            variants |= {name: (None, options) for name, options in FAST_PATH.items()}
        for preset_name in args.presets:
            cfg = preset(preset_name, args.data, family)
            cfg = cfg.override("model", channels=1 if "mnist" in args.data else 3)
            steps = args.steps or (30 if preset_name != "paper" or device.type == "cuda" else 3)
            b, n, s = cfg.train.batch_size, cfg.model.frames, cfg.model.image_size
            x = torch.rand(b, n, cfg.model.channels, s, s, device=device).round()
            floor = None
            for variant, (loss_fn, options) in variants.items():
                if args.only and variant not in args.only:
                    continue
                torch.manual_seed(0)
                model = get_family(family).build(cfg.model).to(device)
                train_cfg = cfg.override("train", **options).train
                prepare(model, train_cfg)
                loss_fn = loss_fn or fast_path_loss(train_cfg)
                # compile traces and compiles on the first calls: keep them out of the timing
                warmup = 3 if train_cfg.compile else 2 if steps > 3 else 1
                with pyro.validation_enabled(False):
                    sec = time_steps(loss_fn, model, x, steps, warmup=warmup)
                floor = floor or sec
                vs_floor = f"{100 * (sec / floor - 1):+.1f}%" if family == "dvae" else "n/a"
                print(f"| {family} | {preset_name} | {b} x {n} | {s} | {variant} | {sec:.4f} | {b * n / sec:,.0f} | "
                      f"{vs_floor} |", flush=True)


if __name__ == "__main__":
    main()
