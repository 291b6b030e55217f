"""Training a judge of either kind, and the judge files and cache."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ...checkpoint import load_checkpoint, save_checkpoint
from ...errors import UserInputError
from .base import Judge, JudgeSettings, _one_cycle, judge_key, judge_kind


def _build_net(settings: JudgeSettings) -> nn.Module:
    return judge_kind(settings.kind).build(settings)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train_judge(settings: JudgeSettings, device: str | torch.device = "cpu", progress: bool = True) -> Judge:
    """Train a judge from scratch and measure its held-out accuracy at every training resolution."""
    from tqdm.auto import tqdm

    device = torch.device(device)
    kind = judge_kind(settings.kind)
    train_data, test_data = kind.data(settings, device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        net = kind.build(settings).to(device)
    generator = torch.Generator(device).manual_seed(settings.seed + 1)
    opt, schedule = _one_cycle(settings, net)
    net.train()
    bar = tqdm(range(settings.steps), desc=f"{settings.kind} judge", unit="step", disable=not progress,
               dynamic_ncols=True)
    for step in bar:
        loss = kind.batch_loss(net, train_data, settings, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    judge = Judge(net, settings)
    accuracy = {str(size): kind.accuracy(judge, test_data, size) for size in settings.resolutions}
    judge.report = {"test_accuracy": accuracy, "n_test": len(test_data)}
    return judge


# --------------------------------------------------------------------------------------------
# Files and cache
# --------------------------------------------------------------------------------------------

_FILE_KIND = "pyro-dvae-judge"


def cache_dir() -> Path:
    """Where judges are cached: ``$PYRO_DVAE_CACHE/judges`` or ``~/.cache/pyro-dvae/judges``."""
    root = os.environ.get("PYRO_DVAE_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "pyro-dvae") / "judges"


def save_judge(judge: Judge, path: str | Path) -> Path:
    """Write a judge (weights, settings, report) atomically and safely."""
    path = Path(path)
    save_checkpoint(path, {"kind": _FILE_KIND, "key": judge.key, "settings": judge.settings.to_dict(),
                           "report": judge.report, "model": judge.net.state_dict()})
    judge.path = path
    return path


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> Judge:
    """Read a judge written by :func:`save_judge` (or ``pyro-dvae judge train``)."""
    payload = load_checkpoint(path, map_location=device)
    if payload.get("kind") != _FILE_KIND:
        raise UserInputError(f"{path} is a pyro-dvae checkpoint but not a judge; make one with `pyro-dvae judge train`")
    settings = JudgeSettings.from_dict(payload["settings"])
    net = _build_net(settings).to(device)
    try:
        net.load_state_dict(payload["model"])
    except RuntimeError:
        raise UserInputError(
            f"{path} was written by another version of the judge; rebuild it with `pyro-dvae judge train`"
        ) from None
    return Judge(net.eval(), settings, payload.get("report", {}), Path(path))


def shipped_judge(key: str) -> Path | None:
    """The judge file of this cache key that ships inside the package (the default judges), if any."""
    path = Path(str(resources.files(__package__).joinpath("shipped", f"{key}.pt")))
    return path if path.is_file() else None


def get_judge(settings: JudgeSettings, device: str | torch.device = "cpu", progress: bool = True,
              retrain: bool = False) -> Judge:
    """The judge for ``settings``: the cached one, else the one shipped in the package (the default
    settings of each kind), else trained and cached first; ``retrain`` always trains anew."""
    key = judge_key(settings)
    path = cache_dir() / f"{key}.pt"
    if not retrain:
        if path.is_file():
            return load_judge(path, device)
        if shipped := shipped_judge(key):
            return load_judge(shipped, device)
    judge = train_judge(settings, device, progress)
    try:
        save_judge(judge, path)
    except OSError as err:
        raise UserInputError(
            f"cannot write the judge cache {path} ({err.strerror}); set PYRO_DVAE_CACHE to a writable folder"
        ) from None
    return judge
