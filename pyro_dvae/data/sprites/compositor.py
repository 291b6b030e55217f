"""The Sprites compositor: the shipped LPC layers, loaded once, blended into frames on a device."""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
from torch import Tensor

from ...errors import UserInputError
from .catalogue import (
    _SHEET_COLS,
    _SHEET_ROWS,
    FRAME_SIZE,
    N_CELLS,
    N_VARIANTS,
    SPRITE_CELLS,
    decode_identity,
)

# --------------------------------------------------------------------------------------------
# Compositor
# --------------------------------------------------------------------------------------------

# Frames rendered per chunk on the CPU: the float working set (~50 kB a frame) then stays in
# cache, which is 2-3x faster than one pass over a large batch.
_CPU_CHUNK = 64


def _over(dst: Tensor, src: Tensor) -> Tensor:
    """``src`` (uint8 RGBA) alpha-composited over opaque ``dst`` (float RGB in 0..255), in place.

    Rounds to integers like PIL's ``Image.alpha_composite`` over an opaque canvas, which is
    exactly ``round((src * a + dst * (255 - a)) / 255)``; float32 holds every step well enough
    that the result is bit-identical (checked for all 256^3 inputs).
    """
    alpha = src[:, 3:].float().mul_(1 / 255)
    return dst.add_(src[:, :3].float().sub_(dst).mul_(alpha)).round_()


def _layer_cells(folder: str, variant: int) -> Tensor:
    """(178, 4, 64, 64) uint8 RGBA cells of one shipped sheet, in SPRITE_CELLS order."""
    from PIL import Image

    path = resources.files("pyro_dvae.data").joinpath("assets", "lpc", folder, f"{variant}.png")
    with path.open("rb") as f, Image.open(f) as im:
        sheet = np.asarray(im.convert("RGBA"))
    expected = (_SHEET_ROWS * FRAME_SIZE, _SHEET_COLS * FRAME_SIZE, 4)
    if sheet.shape != expected:
        raise RuntimeError(f"LPC asset {folder}/{variant}.png is {sheet.shape}, not {expected}")
    grid = sheet.reshape(_SHEET_ROWS, FRAME_SIZE, _SHEET_COLS, FRAME_SIZE, 4)
    rows = [c.row for c in SPRITE_CELLS]
    cols = [c.column for c in SPRITE_CELLS]
    return torch.from_numpy(np.ascontiguousarray(grid[rows, :, cols].transpose(0, 3, 1, 2)))


def _check_binary_alpha(cells: Tensor, name: str) -> None:
    alpha = cells[:, 3]
    if not bool(((alpha == 0) | (alpha == 255)).all()):
        raise RuntimeError(f"LPC {name} layer has partial alpha; the compositor assumes none")


def _release_free_heap() -> None:
    """Hand freed heap memory back to the OS where glibc is in use (a no-op elsewhere).

    Decoding the sheets leaves ~45 MB of freed but resident heap; glibc keeps it unless asked.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class _Layers:
    """The pre-combined layer cells; see :func:`_load_layers`."""

    base: Tensor  # (36 * 178, 3, 64, 64) uint8: body then pants over black, per (skin, pants)
    top: Tensor  # (6 * 178, 4, 64, 64) uint8 RGBA topwear
    crown: Tensor  # (6 * 178, 4, 64, 64) uint8 RGBA hair with shoes on top, binary alpha

    def to(self, device: torch.device) -> _Layers:
        return _Layers(*(t.to(device) for t in (self.base, self.top, self.crown)))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.base, self.top, self.crown))


@functools.lru_cache(maxsize=1)
def _load_layers() -> _Layers:
    """Decode the 25 shipped sheets once and pre-combine them into three cell tensors.

    Body and pants are composited ahead for all 36 (skin, pants) pairs (79 MB), which is exactly
    what PIL holds after those two steps. Hair and shoes have binary alpha, so compositing them
    in turn equals compositing one layer taking shoes where shoes are opaque, else hair; that
    merge is exact and lets a frame be rendered in two blends instead of five (114 MB in all,
    against 73 MB for the raw layers). Cached: every Sprites object shares one copy on the CPU.

    The outputs are allocated first and filled sheet by sheet and in small cell chunks, so that
    few large temporaries exist (the C allocator keeps freed heap memory resident).
    """
    cell_shape = (N_CELLS, 4, FRAME_SIZE, FRAME_SIZE)
    top = torch.empty(N_VARIANTS, *cell_shape, dtype=torch.uint8)
    crown = torch.empty(N_VARIANTS, *cell_shape, dtype=torch.uint8)
    for v in range(N_VARIANTS):
        top[v] = _layer_cells("topwear", v)
        crown[v] = _layer_cells("hair", v)
    shoes = _layer_cells("shoes", 1)
    _check_binary_alpha(crown.view(-1, *cell_shape[1:]), "hair")
    _check_binary_alpha(shoes, "shoes")
    shoes_opaque = (shoes[:, 3:] > 0).expand_as(shoes)
    for v in range(N_VARIANTS):
        crown[v][shoes_opaque] = shoes[shoes_opaque]

    base = torch.empty(N_VARIANTS, N_VARIANTS, N_CELLS, 3, FRAME_SIZE, FRAME_SIZE, dtype=torch.uint8)
    pants = [_layer_cells("bottomwear", p) for p in range(N_VARIANTS)]
    for skin in range(N_VARIANTS):
        body = _layer_cells("body", skin)
        for start in range(0, N_CELLS, _CPU_CHUNK):
            part = slice(start, start + _CPU_CHUNK)
            on_black = _over(torch.zeros(len(body[part]), 3, FRAME_SIZE, FRAME_SIZE), body[part])
            for p, layer in enumerate(pants):
                base[skin, p, part] = _over(on_black.clone(), layer[part])

    _release_free_heap()
    return _Layers(
        base=base.view(-1, 3, FRAME_SIZE, FRAME_SIZE),
        top=top.view(-1, *cell_shape[1:]),
        crown=crown.view(-1, *cell_shape[1:]),
    )


@functools.lru_cache(maxsize=4)
def _layers_on(device: torch.device) -> _Layers:
    """The layers on ``device``, one copy per device however many compositors use it."""
    layers = _load_layers()
    return layers if device.type == "cpu" else layers.to(device)


@functools.lru_cache(maxsize=8)
def _quotients(device: torch.device, dtype: torch.dtype) -> Tensor:
    """(256,) the correctly rounded values of v / 255 for v = 0..255, in ``dtype`` on ``device``."""
    return torch.arange(256, dtype=torch.float64).div(255).to(device=device, dtype=dtype)


def _checked_device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except RuntimeError:
        raise UserInputError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device {str(device)!r} asked for but CUDA is unavailable; use 'cpu'")
    return device


class SpriteCompositor:
    """Renders Sprites frames for any identities and poses with batched tensor ops on a device.

    The layer cells live in three uint8 tensors on ``device`` (114 MB, shared between all
    compositors on the CPU); a batch of frames is gathered with ``index_select`` and
    alpha-blended in float32, with no per-frame Python loop. Output equals PIL's
    ``Image.alpha_composite`` of body, bottomwear, topwear, hair and shoes over opaque black.

    Parameters
    ----------
    device : str or torch.device
        Where the layers live and frames are rendered (``"cpu"``, ``"cuda"``, ...).
    """

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = _checked_device(device)
        self._layers = _layers_on(self.device)

    @property
    def nbytes(self) -> int:
        """Bytes held by the layer cell tensors."""
        return self._layers.nbytes

    def render(self, identity: Tensor, cell: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Frames for broadcastable identity and cell index tensors.

        Parameters
        ----------
        identity : LongTensor
            Identity indices ``k`` in 0..1295.
        cell : LongTensor
            Pose indices into :data:`SPRITE_CELLS`, 0..177.
        dtype : torch.dtype
            ``torch.float32`` (or another float type) for values in [0, 1] (uint8 / 255), or
            ``torch.uint8`` for the raw 0..255 values.

        Returns
        -------
        Tensor
            Shape ``broadcast_shape + (3, 64, 64)`` on ``device``.
        """
        identity, cell = torch.broadcast_tensors(
            torch.as_tensor(identity, device=self.device), torch.as_tensor(cell, device=self.device)
        )
        lead = identity.shape
        identity, cell = identity.reshape(-1), cell.reshape(-1)
        attrs = decode_identity(identity)
        base_idx = (attrs[:, 0] * N_VARIANTS + attrs[:, 1]) * N_CELLS + cell
        top_idx = attrs[:, 2] * N_CELLS + cell
        crown_idx = attrs[:, 3] * N_CELLS + cell

        out = torch.empty(len(cell), 3, FRAME_SIZE, FRAME_SIZE, dtype=dtype, device=self.device)
        # Chunks only on the CPU (see _CPU_CHUNK); a GPU takes the whole batch at once.
        step = _CPU_CHUNK if self.device.type == "cpu" else max(len(cell), 1)
        for start in range(0, len(cell), step):
            part = slice(start, start + step)
            self._render_into(out[part], base_idx[part], top_idx[part], crown_idx[part])
        return out.reshape(*lead, 3, FRAME_SIZE, FRAME_SIZE)

    def _render_into(self, out: Tensor, base_idx: Tensor, top_idx: Tensor, crown_idx: Tensor):
        layers = self._layers
        x = _over(layers.base.index_select(0, base_idx).float(), layers.top.index_select(0, top_idx))
        crown = layers.crown.index_select(0, crown_idx)
        # Binary alpha: compositing the crown is a plain select, exact and cheaper than a blend.
        x = torch.where(crown[:, 3:] > 0, crown[:, :3], x)
        if out.dtype.is_floating_point:
            # Exactly uint8 / 255, as users would convert, on every device. The CPU divides exactly;
            # CUDA divides by a number through its reciprocal, one ulp off for half the values, so
            # there the 256 quotients are looked up (a third slower on the CPU, where it would matter).
            if out.device.type == "cpu":
                torch.div(x, 255, out=out)
            else:
                torch.index_select(_quotients(out.device, out.dtype), 0, x.view(-1).long(), out=out.view(-1))
        else:
            out.copy_(x)
