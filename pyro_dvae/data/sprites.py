"""LPC Sprites: 1296 identities x 178 poses, composited from the shipped LPC layers on the device.

An identity is one choice of (skin, pants, top, hair), 6 variants each, coded as
``k = skin * 216 + pants * 36 + top * 6 + hair``; a pose is one of the 178 non-empty 64 x 64 cells of
the LPC sheet (:data:`SPRITE_CELLS`). Frames are rendered on demand with a few vectorised tensor
ops, so no frame is ever stored and no image is decoded after the layers are loaded once.

Two views are offered:

* :class:`Sprites` (training, the setting of Helminger et al. 2018): one unordered set per
  identity holding all 178 poses; :meth:`FrameSets.sample` draws N distinct poses per set.
* :func:`sprites_eval_sequences` (evaluation, the protocol of Li & Mandt 2018): per identity the 9
  sequences of 8 frames (walk, spellcast, slash x front, left, right) with their labels.

Both use the standard identity split (:func:`split_identities`). :func:`export_sprites` and
:func:`preview_sprites` back the ``pyro-dvae data export/preview sprites`` commands.

The art is dual-licensed CC-BY-SA 3.0 / GPL 3.0; see ``assets/lpc/`` for the notices and authors.
"""

from __future__ import annotations

import ctypes
import functools
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserInputError
from .base import FrameSets

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_VALUES",
    "DIRECTIONS",
    "EVAL_ACTIONS",
    "EVAL_CELLS",
    "EVAL_CLASSES",
    "EVAL_COLUMNS",
    "EVAL_DIRECTIONS",
    "N_CELLS",
    "N_IDENTITIES",
    "SPRITE_CELLS",
    "SpriteCell",
    "SpriteCompositor",
    "Sprites",
    "SpritesSequences",
    "cell_index",
    "decode_identity",
    "encode_identity",
    "export_sprites",
    "preview_sprites",
    "split_identities",
    "sprites_eval_sequences",
]

# --------------------------------------------------------------------------------------------
# Labels: attributes, sheet cells, evaluation classes, split
# --------------------------------------------------------------------------------------------

#: Attribute names in label order (the columns of ``attrs`` / ``sprites_S_A.npy``).
ATTRIBUTES: tuple[str, ...] = ("skin", "pants", "top", "hair")

#: Human-readable name of each attribute value (index 0-5), as in SOURCE.md.
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "skin": ("light", "tanned", "dark-elf", "dark-elf 2", "dark", "dark 2"),
    "pants": ("white pants", "golden greaves", "red pants", "metal pants", "teal pants", "formal pants"),
    "top": (
        "maroon longsleeve",
        "teal longsleeve",
        "white longsleeve",
        "plate chest",
        "leather chest",
        "formal shirt+tie",
    ),
    "hair": ("messy green", "longknot blue", "messy blonde", "bangs white", "plain red", "jewfro purple"),
}

N_VARIANTS = 6
N_IDENTITIES = N_VARIANTS**4
FRAME_SIZE = 64

# (action, first sheet row, rows, columns used), from SOURCE.md.
_SHEET_ACTIONS: tuple[tuple[str, int, int, int], ...] = (
    ("spellcast", 0, 4, 7),
    ("thrust", 4, 4, 8),
    ("walk", 8, 4, 9),
    ("slash", 12, 4, 6),
    ("shoot", 16, 4, 13),
    ("hurt", 20, 1, 6),
)
_SHEET_ROWS, _SHEET_COLS = 21, 13

#: Row order within an action block of the sheet.
DIRECTIONS: tuple[str, ...] = ("back", "left", "front", "right")


@dataclass(frozen=True)
class SpriteCell:
    """One pose: a non-empty 64 x 64 cell of the LPC sheet.

    Attributes
    ----------
    action : str
        ``spellcast``, ``thrust``, ``walk``, ``slash``, ``shoot`` or ``hurt``.
    direction : str
        ``back``, ``left``, ``front`` or ``right``.
    column : int
        Column of the cell in the sheet (the frame number within the animation).
    row : int
        Row of the cell in the sheet.

    Notes
    -----
    ``hurt`` has a single sheet row (the character falling, seen from the front), labelled
    ``front``.
    """

    action: str
    direction: str
    column: int
    row: int


def _sheet_cells() -> tuple[SpriteCell, ...]:
    cells = []
    for action, first_row, n_rows, n_cols in _SHEET_ACTIONS:
        directions = DIRECTIONS if n_rows == 4 else ("front",)
        for row_offset, direction in enumerate(directions):
            cells.extend(SpriteCell(action, direction, col, first_row + row_offset) for col in range(n_cols))
    return tuple(cells)


#: The 178 poses in sheet order (row-major); a frame index of :class:`Sprites` indexes this.
SPRITE_CELLS: tuple[SpriteCell, ...] = _sheet_cells()
N_CELLS = len(SPRITE_CELLS)
_CELL_INDEX = {(c.action, c.direction, c.column): i for i, c in enumerate(SPRITE_CELLS)}


def cell_index(action: str, direction: str, column: int) -> int:
    """Index into :data:`SPRITE_CELLS` of the pose (action, direction, column).

    Raises
    ------
    UserInputError
        If the sheet has no such pose.
    """
    try:
        return _CELL_INDEX[(action, direction, column)]
    except KeyError:
        raise UserInputError(
            f"no sprite pose ({action!r}, {direction!r}, column {column});"
            f" see pyro_dvae.data.sprites.SPRITE_CELLS for the 178 poses"
        ) from None


#: The 9 evaluation classes, action-major: class ``c`` is (EVAL_ACTIONS[c // 3],
#: EVAL_DIRECTIONS[c % 3]).
EVAL_ACTIONS: tuple[str, ...] = ("walk", "spellcast", "slash")
EVAL_DIRECTIONS: tuple[str, ...] = ("front", "left", "right")
EVAL_CLASSES: tuple[str, ...] = tuple(f"{a}-{d}" for a in EVAL_ACTIONS for d in EVAL_DIRECTIONS)
#: Sheet columns of the 8 frames of an evaluation sequence, per action (Li & Mandt 2018).
EVAL_COLUMNS: dict[str, tuple[int, ...]] = {
    "walk": (8, 1, 2, 3, 4, 5, 6, 7),
    "spellcast": (0, 1, 2, 3, 4, 5, 4, 6),
    "slash": (0, 1, 2, 3, 4, 5, 4, 0),
}
SEQUENCE_LENGTH = 8
#: (9, 8) indices into :data:`SPRITE_CELLS` of the frames of each evaluation class.
EVAL_CELLS: tuple[tuple[int, ...], ...] = tuple(
    tuple(cell_index(a, d, col) for col in EVAL_COLUMNS[a]) for a in EVAL_ACTIONS for d in EVAL_DIRECTIONS
)

SPLIT_SEED = 423
N_TRAIN_IDENTITIES = 1000


def decode_identity(k: Tensor | np.ndarray | int) -> Tensor:
    """Attribute indices (..., 4) in the order skin, pants, top, hair of identities ``k``.

    Parameters
    ----------
    k : int, array or LongTensor
        Identity indices in 0..1295, ``k = skin * 216 + pants * 36 + top * 6 + hair``.

    Returns
    -------
    Tensor
        int64, shape ``k.shape + (4,)``, on ``k``'s device if ``k`` is a tensor.
    """
    k = torch.as_tensor(k, dtype=torch.int64)
    return torch.stack([k // 216, (k // 36) % 6, (k // 6) % 6, k % 6], dim=-1)


def encode_identity(attrs: Tensor | np.ndarray | Sequence[int]) -> Tensor:
    """Identity index ``k`` from attribute indices (..., 4) (skin, pants, top, hair)."""
    a = torch.as_tensor(attrs, dtype=torch.int64)
    return ((a[..., 0] * 6 + a[..., 1]) * 6 + a[..., 2]) * 6 + a[..., 3]


def split_identities(split: str) -> np.ndarray:
    """Identity indices of the standard split, in permutation order.

    ``np.random.seed(423); np.random.permutation(1296)``: the first 1000 entries are ``train``,
    the remaining 296 ``test`` (Li & Mandt 2018). The global numpy random state is left untouched.

    Parameters
    ----------
    split : {"train", "test"}

    Returns
    -------
    numpy.ndarray
        int64 identity indices.
    """
    # RandomState(seed) is the same legacy MT19937 stream as np.random.seed(seed).
    perm = np.random.RandomState(SPLIT_SEED).permutation(N_IDENTITIES).astype(np.int64)
    if split == "train":
        return perm[:N_TRAIN_IDENTITIES]
    if split == "test":
        return perm[N_TRAIN_IDENTITIES:]
    raise UserInputError(f"unknown split {split!r}; use 'train' or 'test'")


def _split_subset(split: str, limit_identities: int | None) -> np.ndarray:
    ids = split_identities(split)
    if limit_identities is None:
        return ids
    if not 1 <= limit_identities <= len(ids):
        raise UserInputError(
            f"limit_identities={limit_identities} is out of range for the {split} split;"
            f" use 1..{len(ids)} or leave it unset"
        )
    return ids[:limit_identities]


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
            torch.div(x, 255, out=out)  # exactly uint8 / 255, as users would convert
        else:
            out.copy_(x)


# --------------------------------------------------------------------------------------------
# Training view: one set of 178 poses per identity
# --------------------------------------------------------------------------------------------


class Sprites(FrameSets):
    """LPC Sprites as frame sets: one unordered set of all 178 poses per identity.

    Frames are rendered on ``device`` on demand; nothing but the layer cells (114 MB) is stored.

    Parameters
    ----------
    split : {"train", "test"}
        The 1000 train or the 296 test identities of the standard split
        (:func:`split_identities`).
    image_size : int, optional
        Side of the frames served (area-resampled from 64); default 64.
    device : str or torch.device
        Where frames are rendered; use the training device.
    limit_identities : int, optional
        Keep only the first K identities of the split (for quick runs and tests).

    Attributes
    ----------
    identities : LongTensor
        (n_sets,) identity index ``k`` of each set, on ``device``.
    set_sizes : LongTensor
        (n_sets,) all 178; frame ``j`` of a set is the pose ``SPRITE_CELLS[j]``.
    """

    name = "sprites"
    channels = 3
    native_size = FRAME_SIZE

    def __init__(
        self,
        split: str = "train",
        image_size: int | None = None,
        device: str | torch.device = "cpu",
        limit_identities: int | None = None,
    ):
        super().__init__(image_size=image_size, device=_checked_device(device))
        self.split = split
        self.identities = torch.from_numpy(_split_subset(split, limit_identities)).to(self.device)
        self.set_sizes = torch.full((len(self.identities),), N_CELLS, dtype=torch.int64, device=self.device)
        self.compositor = SpriteCompositor(self.device)

    def labels(self, set_idx: Tensor | int) -> Tensor:
        """Attribute indices (..., 4) (skin, pants, top, hair) of the identities of sets."""
        return decode_identity(self.identities[torch.as_tensor(set_idx, device=self.device)])

    def _gather(self, set_idx: Tensor, frame_idx: Tensor) -> Tensor:
        return self.compositor.render(self.identities[set_idx], frame_idx)

    def __repr__(self) -> str:
        return (
            f"Sprites(split={self.split!r}, n_sets={len(self)}, image_size={self.image_size},"
            f" device={str(self.device)!r})"
        )


# --------------------------------------------------------------------------------------------
# Evaluation view: the 9 labelled sequences of 8 frames per identity
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class SpritesSequences:
    """Labelled evaluation sequences, rendered on demand (see :func:`sprites_eval_sequences`).

    Row ``i`` is identity ``identity[i]`` performing class ``action[i]``; rows are
    identity-major (the 9 classes of an identity are consecutive).

    Attributes
    ----------
    attrs : LongTensor
        (n, 4) attribute indices: skin, pants, top, hair.
    action : LongTensor
        (n,) action class in 0..8, :data:`EVAL_CLASSES` order (walk-front, walk-left, ...).
    identity : LongTensor
        (n,) identity index ``k`` (``decode_identity(identity) == attrs``).
    cells : LongTensor
        (n, 8) pose indices into :data:`SPRITE_CELLS` of each frame.
    """

    attrs: Tensor
    action: Tensor
    identity: Tensor
    cells: Tensor
    compositor: SpriteCompositor = field(repr=False)

    def __len__(self) -> int:
        return len(self.identity)

    @property
    def device(self) -> torch.device:
        return self.compositor.device

    def frames(self, rows: Tensor | slice | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Render sequences ``rows`` (all if None): (m, 8, 3, 64, 64).

        ``dtype=torch.float32`` gives values in [0, 1] (uint8 / 255, not the original's / 256);
        ``torch.uint8`` gives 0..255 at a quarter of the memory.
        """
        rows = slice(None) if rows is None else rows
        return self.compositor.render(self.identity[rows, None], self.cells[rows], dtype=dtype)

    def batches(self, batch_size: int = 256, dtype: torch.dtype = torch.float32) -> Iterator[tuple[slice, Tensor]]:
        """Yield ``(rows, x)`` over all sequences in order, ``x`` = ``frames(rows, dtype)``."""
        for start in range(0, len(self), batch_size):
            rows = slice(start, min(start + batch_size, len(self)))
            yield rows, self.frames(rows, dtype)

    @property
    def x(self) -> Tensor:
        """All frames (n, 8, 3, 64, 64) float in [0, 1]; 1.05 GB for the test split.

        Prefer :meth:`batches` or ``frames(dtype=torch.uint8)`` where memory matters.
        """
        return self.frames()


def sprites_eval_sequences(
    split: str, device: str | torch.device = "cpu", limit_identities: int | None = None
) -> SpritesSequences:
    """The standard Sprites evaluation sequences (Li & Mandt 2018) of one split.

    Each identity of the split gives 9 sequences of 8 frames: actions walk, spellcast, slash x
    directions front, left, right, with the frame columns of :data:`EVAL_COLUMNS`. Labels are
    available at once; frames are rendered on demand (:meth:`SpritesSequences.frames`,
    :meth:`SpritesSequences.batches`), since the test split alone is 1.05 GB as float32.

    Parameters
    ----------
    split : {"train", "test"}
        1000 train identities (9000 sequences) or 296 test identities (2664 sequences), split
        exactly as :func:`split_identities`.
    device : str or torch.device
        Where labels live and frames are rendered.
    limit_identities : int, optional
        Keep only the first K identities of the split (9K sequences).

    Returns
    -------
    SpritesSequences
        Rows identity-major: row ``9 * i + c`` is the i-th identity of the split in class ``c``.

    Examples
    --------
    >>> seqs = sprites_eval_sequences("test")
    >>> len(seqs), seqs.attrs.shape, seqs.action[:9].tolist()
    (2664, torch.Size([2664, 4]), [0, 1, 2, 3, 4, 5, 6, 7, 8])
    >>> for rows, x in seqs.batches(256):  # x: (<=256, 8, 3, 64, 64) float in [0, 1]
    ...     pass
    """
    compositor = SpriteCompositor(device)
    ids = torch.from_numpy(_split_subset(split, limit_identities)).to(compositor.device)
    n_classes = len(EVAL_CLASSES)
    identity = ids.repeat_interleave(n_classes)
    action = torch.arange(n_classes, device=compositor.device).repeat(len(ids))
    eval_cells = torch.tensor(EVAL_CELLS, dtype=torch.int64, device=compositor.device)
    return SpritesSequences(
        attrs=decode_identity(identity),
        action=action,
        identity=identity,
        cells=eval_cells[action],
        compositor=compositor,
    )


# --------------------------------------------------------------------------------------------
# Export and preview (back the `pyro-dvae data export/preview sprites` commands)
# --------------------------------------------------------------------------------------------


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"output path {out_dir} is an existing file; give a directory (created if missing)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(
            f"cannot create output directory {out_dir} ({err.strerror}); choose a writable path"
        ) from None
    if not os.access(out_dir, os.W_OK):
        raise UserInputError(f"output directory {out_dir} is not writable; choose another path")


def _temp_path(final: Path) -> Path:
    """A fresh hidden name beside ``final`` (same file system, so the final rename is atomic)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part")


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def _write_frames(path: Path, seqs: SpritesSequences, batch_size: int, progress) -> None:
    """Stream (n, 8, 64, 64, 3) uint8 frames to an .npy file batch by batch (bounded memory)."""
    shape = (len(seqs), SEQUENCE_LENGTH, FRAME_SIZE, FRAME_SIZE, 3)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for rows, x in seqs.batches(batch_size, dtype=torch.uint8):
            f.write(x.permute(0, 1, 3, 4, 2).contiguous().cpu().numpy().tobytes())
            progress.update(rows.stop - rows.start)


def export_sprites(
    out_dir: str | Path,
    splits: Sequence[str] = ("train", "test"),
    limit_identities: int | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    progress: bool = True,
) -> list[Path]:
    """Write the evaluation sequences of each split as .npy files (the protocol's file layout).

    Per split ``S``: ``sprites_S_X.npy`` uint8 (n, 8, 64, 64, 3), ``sprites_S_A.npy`` int64 (n, 4)
    attributes (skin, pants, top, hair), ``sprites_S_D.npy`` int64 (n,) action class
    (:data:`EVAL_CLASSES` order), ``sprites_S_id.npy`` int64 (n,) identity ``k``; rows as
    :func:`sprites_eval_sequences`. Every file is written to a temporary name in ``out_dir`` and
    only renamed once all files are complete, so an error leaves no partial output.

    Parameters
    ----------
    out_dir : path
        Directory to write into (created if missing).
    splits : sequence of {"train", "test"}
    limit_identities : int, optional
        Export only the first K identities of each split.
    device : str or torch.device
        Where frames are rendered.
    batch_size : int
        Sequences rendered per step.
    progress : bool
        Show a tqdm progress bar (on stderr).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    UserInputError
        If ``out_dir`` is an existing file or cannot be created or written.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)
    all_seqs = {s: sprites_eval_sequences(s, device, limit_identities) for s in splits}
    total = sum(len(s) for s in all_seqs.values())
    pending: list[tuple[Path, Path]] = []  # (temporary, final)
    try:
        with tqdm(total=total, unit="seq", desc="sprites export", disable=not progress) as bar:
            for split, seqs in all_seqs.items():
                for suffix in ("X", "A", "D", "id"):
                    final = out_dir / f"sprites_{split}_{suffix}.npy"
                    pending.append((_temp_path(final), final))
                x_tmp, a_tmp, d_tmp, id_tmp = (tmp for tmp, _ in pending[-4:])
                _write_frames(x_tmp, seqs, batch_size, bar)
                _write_npy(a_tmp, seqs.attrs.cpu().numpy())
                _write_npy(d_tmp, seqs.action.cpu().numpy())
                _write_npy(id_tmp, seqs.identity.cpu().numpy())
        for tmp, final in pending:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    return [final for _, final in pending]


def preview_sprites(
    out_file: str | Path,
    split: str = "train",
    n_identities: int = 4,
    frame: int = 3,
    seed: int = 0,
) -> Path:
    """Draw a labelled grid: rows are random identities, columns the 9 evaluation classes.

    Parameters
    ----------
    out_file : path
        Image to write (format from the suffix, e.g. ``.png``); parent directories are created.
    split : {"train", "test"}
        Split the identities are drawn from.
    n_identities : int
        Number of rows.
    frame : int
        Which of the 8 frames of each sequence to show.
    seed : int
        Seed for choosing the identities.

    Returns
    -------
    Path
        ``out_file``.

    Raises
    ------
    UserInputError
        For a bad path or format, or arguments out of range.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_file = Path(out_file)
    if out_file.is_dir():
        raise UserInputError(f"output path {out_file} is a directory; give a file name like x.png")
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    fmt = out_file.suffix.lstrip(".").lower()
    if fmt not in formats:
        raise UserInputError(
            f"cannot tell the image format of {out_file}; end it with one of"
            f" {', '.join('.' + f for f in sorted(formats))}"
        )
    ids = split_identities(split)
    if not 1 <= n_identities <= len(ids):
        raise UserInputError(f"n_identities={n_identities} out of range; use 1..{len(ids)}")
    if not 0 <= frame < SEQUENCE_LENGTH:
        raise UserInputError(f"frame={frame} out of range; use 0..{SEQUENCE_LENGTH - 1}")

    chosen = np.random.default_rng(seed).choice(ids, size=n_identities, replace=False)
    cells = torch.tensor(EVAL_CELLS)[:, frame]
    images = SpriteCompositor("cpu").render(torch.from_numpy(chosen)[:, None], cells)
    images = images.permute(0, 1, 3, 4, 2).numpy()  # (n_identities, 9, 64, 64, 3)

    n_cols = len(EVAL_CLASSES)
    fig = Figure(figsize=(1.1 * n_cols + 2.2, 1.25 * n_identities + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_identities, n_cols, squeeze=False)
    for i, k in enumerate(chosen):
        attrs = decode_identity(int(k)).tolist()
        row_label = f"k={k}\n" + "\n".join(ATTRIBUTE_VALUES[name][v] for name, v in zip(ATTRIBUTES, attrs, strict=True))
        for c in range(n_cols):
            ax = axes[i, c]
            ax.imshow(images[i, c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(EVAL_CLASSES[c].replace("-", "\n"), fontsize=8)
            if c == 0:
                ax.set_ylabel(row_label, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle(f"LPC Sprites ({split} split, frame {frame} of each sequence)", fontsize=9)

    try:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(out_file)
    except OSError as err:
        raise UserInputError(f"cannot write {out_file} ({err.strerror}); choose a writable path") from None
    try:
        fig.savefig(tmp, format=fmt, dpi=150)
        os.replace(tmp, out_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_file
