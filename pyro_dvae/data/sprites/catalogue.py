"""Sprites labels and constants: attributes, identity codes, sheet cells, evaluation classes, split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...errors import UserInputError

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

#: The distinct poses of the evaluation classes (63 of the 178), in sheet order: what the standard
#: protocol's training sequences show, and all that its judge was trained to read.
PROTOCOL_CELLS: tuple[int, ...] = tuple(sorted({cell for cells in EVAL_CELLS for cell in cells}))
#: The pose sets of the unordered view (:class:`Sprites`, option ``poses``).
POSE_SETS: tuple[str, ...] = ("sheet", "protocol")

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
