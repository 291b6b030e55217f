"""Where a training step's time goes: data, each network (forward and backward), the ELBO, Adam.

Runs the real training step of a preset (`SVIPlan.step`, what `pyro-dvae train` runs) on the CPU
and splits its wall-clock time by the model's networks: module hooks time each network's forward
pass and, through backward hooks, its backward pass (on a CPU every op is synchronous, so wall
time between two hooks is that network's time). A network whose inputs need no gradient (the frame
features read the pixels) would end its backward pass unseen, so for the split its input is marked
as needing one: that adds the gradient of the frames themselves, a small part of its backward pass.
What no network accounts for is the ELBO itself (Pyro's traces, the likelihood and KL terms with
their backward) and Adam's update; priors that return a distribution are timed forward only.
Drawing the batch is timed on its own. Run on a quiet machine:

    python benchmarks/speed/step_profile.py                                  # the Sprites cpu preset
    python benchmarks/speed/step_profile.py --set model.image_size=64         # at 64x64
    python benchmarks/speed/step_profile.py --set model.image_size=64 --set model.space_to_depth=2
    python benchmarks/speed/step_profile.py --ops                             # also the top aten ops

``--set`` takes ``SECTION.KEY=VALUE`` like benchmarks/results/quality.py.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from pyro_dvae.config import preset
from pyro_dvae.data import load_frame_sets
from pyro_dvae.fastpath import prepare
from pyro_dvae.models import get_family

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine, with_settings  # noqa: E402


def _inputs_need_grad(module, args):
    """Float inputs that need no gradient get one, so the module's backward hook closes its pass."""
    if torch.is_grad_enabled() and not any(torch.is_tensor(a) and a.requires_grad for a in args):
        return tuple(a.detach().requires_grad_() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
    return None


class NetworkTimer:
    """Accumulates each top-level network's forward and backward wall time through module hooks."""

    def __init__(self, model: nn.Module):
        self.seconds: dict[str, float] = defaultdict(float)
        self._started: dict[tuple[str, str], float] = {}
        for name, module in model.named_children():
            if not any(p.requires_grad for p in module.parameters()):
                continue
            module.register_forward_pre_hook(self._start(name, "forward"))
            module.register_forward_pre_hook(_inputs_need_grad)
            module.register_forward_hook(self._stop(name, "forward"))
            module.register_full_backward_pre_hook(self._start(name, "backward"))
            module.register_full_backward_hook(self._stop(name, "backward"))

    def _start(self, name: str, phase: str):
        def hook(*_):
            self._started[name, phase] = time.perf_counter()
        return hook

    def _stop(self, name: str, phase: str):
        def hook(*_):
            begun = self._started.pop((name, phase), None)
            if begun is not None:
                self.seconds[f"{name} ({phase})"] += time.perf_counter() - begun
        return hook

    def reset(self) -> None:
        self.seconds.clear()


def main() -> None:
    # Hooks on modules that return distributions, or whose inputs need no gradient, warn; the table
    # says how those are timed.
    warnings.filterwarnings("ignore", message=".*backward hook.*")
    warnings.filterwarnings("ignore", message=".*For backward hooks to be called.*")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sprites")
    parser.add_argument("--model", default="dvae", help="model family (default: dvae)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=30, help="timed steps (after 10 warm-up steps)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--ops", action="store_true", help="also print the 15 costliest aten ops (torch.profiler)")
    args = parser.parse_args()

    config = with_settings(preset(args.preset, args.data, args.model), args.settings).override("train", device="cpu")
    family = get_family(config.model.family)
    data = load_frame_sets(config.data.source, "train", config.model.image_size, "cpu", ordered=family.ordered,
                           **config.data.options)
    config = config.override("model", channels=data.channels).validate()
    torch.manual_seed(0)
    model = family.build(config.model)
    prepare(model, config.train)
    plan = family.plan_class(model, config.train)
    generator = torch.Generator().manual_seed(0)
    batch, frames = config.train.batch_size, config.model.frames

    def draw() -> torch.Tensor:
        return (data.sample_windows if family.ordered else data.sample)(batch, frames, generator)

    late_step = 10**6  # KL warm-up over: the step at full weight
    for _ in range(10):
        plan.step(draw(), late_step)
    start = time.perf_counter()
    batches = [draw() for _ in range(args.steps)]
    data_s = (time.perf_counter() - start) / args.steps

    # Timed without hooks first (hooks cost a little), then with them for the split.
    start = time.perf_counter()
    for x in batches:
        plan.step(x, late_step)
    step_s = (time.perf_counter() - start) / args.steps
    timer = NetworkTimer(model)
    optimizer_s = 0.0
    adam_step = plan.optimizer.step

    def timed_adam_step(*a, **k):
        nonlocal optimizer_s
        begun = time.perf_counter()
        result = adam_step(*a, **k)
        optimizer_s += time.perf_counter() - begun
        return result

    plan.optimizer.step = timed_adam_step
    start = time.perf_counter()
    for x in batches:
        plan.step(x, late_step)
    hooked_s = (time.perf_counter() - start) / args.steps
    plan.optimizer.step = adam_step

    changed = f" with {', '.join(args.settings)}" if args.settings else ""
    print(f"machine: {machine()}")
    print(f"{args.model} `{args.preset}` preset on {args.data}{changed}: batch {batch} x {frames} frames of "
          f"{config.model.image_size}px, {args.steps} steps timed\n")
    print(f"step: {1000 * step_s:.1f} ms (with the timing hooks {1000 * hooked_s:.1f} ms); batch drawing "
          f"{1000 * data_s:.1f} ms; {1 / (step_s + data_s):.2f} steps/s\n")
    print("| part | ms per step | share of the step |")
    print("|---|---|---|")
    rows = {name: s / args.steps for name, s in sorted(timer.seconds.items(), key=lambda kv: -kv[1])}
    rows["Adam update"] = optimizer_s / args.steps
    rows["ELBO: Pyro traces, log-densities, KLs and their backward (the rest)"] = hooked_s - sum(rows.values())
    total = hooked_s + data_s
    for name, seconds in rows.items():
        print(f"| {name} | {1000 * seconds:.1f} | {100 * seconds / total:.0f}% |")
    print(f"| drawing the batch (data) | {1000 * data_s:.1f} | {100 * data_s / total:.0f}% |")

    if args.ops:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for x in batches[:10]:
                plan.step(x, late_step)
        print("\n" + prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=32, max_shapes_column_width=60))


if __name__ == "__main__":
    main()
