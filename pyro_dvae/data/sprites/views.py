"""The two Sprites views: frame sets for training and labelled sequences for evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ...errors import UserInputError
from ..base import FrameSets
from .catalogue import (
    EVAL_CELLS,
    EVAL_CLASSES,
    FRAME_SIZE,
    N_CELLS,
    POSE_SETS,
    PROTOCOL_CELLS,
    _split_subset,
    decode_identity,
)
from .compositor import SpriteCompositor, _checked_device

# --------------------------------------------------------------------------------------------
# Training view: one set of poses per identity (all 178, or the protocol's 63)
# --------------------------------------------------------------------------------------------


class Sprites(FrameSets):
    """LPC Sprites as frame sets: one unordered set of poses per identity (all 178 by default).

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
    poses : {"sheet", "protocol"}
        ``sheet``: all 178 poses of the LPC sheet, as Helminger et al. (2018) trained. ``protocol``:
        the 63 poses of the standard protocol's 9 evaluation classes (walk, spellcast, slash facing
        front, left, right), the frames every system of the published Sprites table trains on.
        Its judge was trained on those poses only and cannot read skin from a character's back
        (17% on real back-facing frames), so a model that draws all 178 poses when z is resampled
        is marked down for poses the protocol never shows (docs/ablation.md).

    Attributes
    ----------
    identities : LongTensor
        (n_sets,) identity index ``k`` of each set, on ``device``.
    set_sizes : LongTensor
        (n_sets,) 178 (or 63); frame ``j`` of a set is the pose ``SPRITE_CELLS[cells[j]]``.
    cells : LongTensor
        The poses of a set, indices into :data:`SPRITE_CELLS`, on ``device``.
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
        poses: str = "sheet",
    ):
        if poses not in POSE_SETS:
            raise UserInputError(f"unknown poses {poses!r}; use sheet (all 178 poses of the LPC sheet) or "
                                 f"protocol (the 63 poses of the standard protocol's evaluation classes)")
        super().__init__(image_size=image_size, device=_checked_device(device))
        self.split, self.poses = split, poses
        self.identities = torch.from_numpy(_split_subset(split, limit_identities)).to(self.device)
        self.cells = torch.tensor(PROTOCOL_CELLS if poses == "protocol" else range(N_CELLS), device=self.device)
        self.set_sizes = torch.full((len(self.identities),), len(self.cells), dtype=torch.int64, device=self.device)
        self.compositor = SpriteCompositor(self.device)

    def labels(self, set_idx: Tensor | int) -> Tensor:
        """Attribute indices (..., 4) (skin, pants, top, hair) of the identities of sets."""
        return decode_identity(self.identities[torch.as_tensor(set_idx, device=self.device)])

    def _gather(self, set_idx: Tensor, frame_idx: Tensor) -> Tensor:
        return self.compositor.render(self.identities[set_idx], self.cells[frame_idx])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, n_sets={len(self)}, image_size={self.image_size},"
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
# Ordered training view: the 8-frame action sequences, for families that read order
# --------------------------------------------------------------------------------------------


class SpritesActions(Sprites):
    """The evaluation sequences of a split as frame sets in temporal order (one set per sequence).

    What sequential families (DSA) train on: per identity the 9 action sequences of 8 frames
    (walk, spellcast, slash x front, left, right) of :func:`sprites_eval_sequences`, as Li & Mandt
    (2018) trained on the 1000 train identities. Same parameters as :class:`Sprites`;
    ``identities`` holds each sequence's identity, so :meth:`labels` works per sequence. Its frames
    are the protocol's poses whatever ``poses`` says (accepted so that a run's data options open
    either view).
    """

    def __init__(
        self,
        split: str = "train",
        image_size: int | None = None,
        device: str | torch.device = "cpu",
        limit_identities: int | None = None,
        poses: str = "protocol",
    ):
        super().__init__(split, image_size, device, limit_identities, poses)
        self.sequences = sprites_eval_sequences(split, self.device, limit_identities)
        self.identities = self.sequences.identity
        self.set_sizes = torch.full_like(self.identities, self.sequences.cells.shape[1])

    def _gather(self, set_idx: Tensor, frame_idx: Tensor) -> Tensor:
        return self.compositor.render(self.identities[set_idx], self.sequences.cells[set_idx, frame_idx])
