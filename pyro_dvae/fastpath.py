"""The GPU fast path: options of the trainer that change how the networks run, never what they compute.

``precision = "bf16"``   the networks run under bfloat16 autocast; every network's outputs are cast
                         back to float32 before a distribution reads them, so log-densities, KLs
                         and the ELBO's sums are float32 (bf16 has 8 bits of mantissa: a sum over
                         a batch of 64x64x3 pixels in bf16 would lose the loss's digits).
``channels_last``        convolution weights (and so activations) in NHWC layout, what tensor
                         cores read without transposes.
``compile``              each network of the model compiled by torch.compile in place
                         (``nn.Module.compile``: the state dict keeps its keys, so checkpoints are
                         unchanged and load into an uncompiled model).

All three work on a CPU too (bf16 autocast is slow there without AVX-512 BF16; compile needs a C
compiler), which is how the tests check them. Defaults are off: see docs/performance.md for
what ``benchmarks/speed/step_time.py --device cuda`` measures for each.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .errors import UserInputError

#: torch.compile's backend for ``compile`` (the tests use a quicker one to check the wiring).
COMPILE_BACKEND = "inductor"


def prepare(model: nn.Module, cfg) -> None:
    """Apply the layout, precision and compile options of a TrainConfig to ``model``, in place."""
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.precision == "bf16":
        for network in model.children():
            network.register_forward_hook(_float32_outputs)
    if cfg.compile:
        if not hasattr(nn.Module, "compile"):
            raise UserInputError("--compile needs torch >= 2.2 (nn.Module.compile); upgrade torch or leave it out")
        for network in model.children():
            network.compile(backend=COMPILE_BACKEND)


def autocast(cfg, device: torch.device):
    """The context a training step's forward pass runs in."""
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _float32_outputs(module: nn.Module, inputs, output):
    return _to_float32(output)


def _to_float32(value):
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, tuple):  # includes named tuples
        cast = [_to_float32(v) for v in value]
        return type(value)(*cast) if hasattr(value, "_fields") else tuple(cast)
    if isinstance(value, list):
        return [_to_float32(v) for v in value]
    return value
