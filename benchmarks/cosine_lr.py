"""Ablation (not kept in any preset): the default run with its learning rate cosine-decayed over
the wall-clock budget, to FLOOR x lr when the budget is spent.

Wraps ``SVIPlan.step`` to set Adam's rate from the time since the first step, then runs
``benchmarks/quality.py`` with the arguments given (Sprites), or ``pyro-dvae train`` when the first
argument is ``train`` (any data; set BUDGET_S to the run's budget less its set-up). The trainer has
no schedule of its own because this one did not help (docs/ablation.md, "The static code's KL
weight" and "Moving MNIST: what did not help"):

    python benchmarks/cosine_lr.py --train-seeds 1 --seeds 2 --set train.f_kl_weight=1
    BUDGET_S=860 python benchmarks/cosine_lr.py train --data moving-mnist-1 --out runs/mm-cosine
"""

from __future__ import annotations

import math
import os
import runpy
import sys
import time
from pathlib import Path

from pyro_dvae.models import plans

BUDGET_S = float(os.environ.get("BUDGET_S", 13 * 60 - 15))  # the preset's 13 minutes, less set-up
FLOOR = float(os.environ.get("FLOOR", 0.02))
_plain_step = plans.SVIPlan.step
_started: dict[int, float] = {}


def decayed_step(plan: plans.SVIPlan, x, step: int):
    elapsed = time.perf_counter() - _started.setdefault(id(plan), time.perf_counter())
    progress = min(1.0, elapsed / BUDGET_S)
    for group in plan.optimizer.param_groups:
        group["lr"] = plan.cfg.lr * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))
    return _plain_step(plan, x, step)


if __name__ == "__main__":
    plans.SVIPlan.step = decayed_step
    if sys.argv[1:2] == ["train"]:
        from pyro_dvae.cli import main

        sys.argv = ["pyro-dvae", *sys.argv[1:]]
        main()
    else:
        sys.argv = ["quality.py", *sys.argv[1:]]
        runpy.run_path(str(Path(__file__).with_name("quality.py")), run_name="__main__")
