"""What the benchmark scripts share: the machine line, mean ± spread, settings from the command
line, the Sprites heads and a Sprites run's posterior codes.

Every script starts with the same two lines, so that it runs as ``python benchmarks/DRAWER/NAME.py``
from anywhere::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
    from common import machine
"""

from __future__ import annotations

import os
import platform
import statistics
import tomllib
from pathlib import Path

import pyro
import torch

from pyro_dvae import load_run, posterior
from pyro_dvae.config import RunConfig
from pyro_dvae.data.sprites import sprites_eval_sequences
from pyro_dvae.evaluation.judges import default_settings, get_judge, resample

#: The five heads of the Sprites target: (report section, metric, label).
HEADS = [("dynamics_kept", "action_accuracy", "action (f resampled)"),
         ("static_kept", "skin", "skin (z resampled)"), ("static_kept", "pants", "pants (z resampled)"),
         ("static_kept", "top", "top (z resampled)"), ("static_kept", "hair", "hair (z resampled)")]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return (f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads | "
            f"torch {torch.__version__} | pyro {pyro.__version__}")


def spread(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def sprites_posterior(run_dir: Path, split: str, rows, seed: int):
    """For the scripts that read one Sprites run: its model (eval mode), the default judge, and the
    posterior codes (f, z) of the split's evaluation sequences ``rows`` with their labels, drawn with
    ``seed`` (the returned generator continues that stream)."""
    run = load_run(run_dir)
    model = run.model.eval()
    judge = get_judge(default_settings("sprites"), run.device, True)
    sequences = sprites_eval_sequences(split, run.device)
    x = resample(sequences.frames(rows), run.config.model.image_size)
    torch.manual_seed(seed)
    rng = torch.Generator(run.device).manual_seed(seed)
    with torch.no_grad():
        f, z = posterior.encode(model, x, rng)
    return model, judge, sequences.attrs[rows], f, z, rng


def with_settings(config: RunConfig, settings: list[str]) -> RunConfig:
    """The config with each ``SECTION.KEY=VALUE`` applied (the value read as TOML, else as text)."""
    for item in settings:
        key, _, text = item.partition("=")
        section, _, name = key.partition(".")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        config = config.override(section, **{name: value})
    return config.validate()
