"""Refuse a run that cannot fit in memory, before any memory is taken."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..config import RunConfig
from ..errors import UserInputError


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory the device has (None where it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            return None
    return None


def check_memory(config: RunConfig, device: torch.device, build=None) -> None:
    """Refuse a run that cannot fit, with an estimate, before any memory is taken.

    The estimate is a lower bound on one training step: the parameters with their gradients and
    Adam's two moments (counted on a model that ``build(model_config)`` makes on the meta device,
    which allocates nothing), and a batch of input frames with the first layer's feature maps,
    forward and backward. A run refused here could not have run; one that passes may still need more.
    """
    have = device_memory(device)
    if have is None:
        return
    m, t = config.model, config.train
    parameters = 0
    if build is not None:
        try:
            with torch.device("meta"):
                model: nn.Module = build(m)
            parameters = sum(p.numel() for p in model.parameters())
        except Exception:  # a plugin family that cannot be built on the meta device: count the batch only
            parameters = 0
    per_frame = m.channels * m.image_size**2 + m.conv_width * (m.image_size // 2) ** 2
    need = 4 * (4 * parameters + 2 * t.batch_size * m.frames * per_frame)
    if need > have:
        raise UserInputError(
            f"this run needs at least {need / 2**30:,.1f} GiB for one training step ({parameters / 1e6:,.1f}M "
            f"parameters, batch {t.batch_size:,} x {m.frames} frames of {m.image_size}px) but {device} has "
            f"{have / 2**30:,.1f} GiB; lower --batch-size, --frames, --image-size or the network widths")
