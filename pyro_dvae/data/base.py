"""The one data abstraction of the package: a collection of frame sets.

The DVAE never uses temporal order, so every source (rendered Sprites identities, Moving MNIST
sequences, a folder of videos, a folder of image folders) is presented the same way: ``n_sets``
sets, set ``i`` holding ``set_sizes[i]`` frames, stored in their temporal order where they have
one. Order-free families train on N distinct frames drawn from each of a batch of sets
(:meth:`FrameSets.sample`); sequential families (DSA) on windows of T consecutive frames
(:meth:`FrameSets.sample_windows`); evaluation and inspection read a whole set in stored order.
"""

from __future__ import annotations

import abc
import functools

import torch
import torch.nn.functional as F
from torch import Tensor


class FrameSets(abc.ABC):
    """Unordered frame sets served as float tensors in [0, 1] of shape (..., C, H, W).

    Subclasses set ``name``, ``channels``, ``native_size``, ``set_sizes`` (LongTensor (n_sets,) on
    ``device``) and implement :meth:`_gather`. ``image_size`` (if different from the native size)
    is applied here, by area resampling, so that every source supports every model size.
    """

    name: str
    channels: int
    native_size: int
    set_sizes: Tensor

    def __init__(self, image_size: int | None = None, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self._image_size = image_size

    @property
    def image_size(self) -> int:
        return self._image_size or self.native_size

    @functools.cached_property
    def max_set_size(self) -> int:
        # Cached: reading it from a device tensor at every step would synchronise with the GPU.
        return int(self.set_sizes.max())

    def __len__(self) -> int:
        return int(self.set_sizes.numel())

    @abc.abstractmethod
    def _gather(self, set_idx: Tensor, frame_idx: Tensor) -> Tensor:
        """Frames (..., C, native, native) float in [0, 1] for index tensors of equal shape."""

    def frames(self, set_idx: Tensor, frame_idx: Tensor) -> Tensor:
        """Frames for broadcastable index tensors, at the model's image size, on ``device``."""
        set_idx, frame_idx = torch.broadcast_tensors(
            set_idx.to(self.device), frame_idx.to(self.device)
        )
        x = self._gather(set_idx, frame_idx)
        if self.image_size != self.native_size:
            lead = x.shape[:-3]
            x = F.interpolate(
                x.reshape(-1, *x.shape[-3:]), size=(self.image_size,) * 2, mode="area"
            ).reshape(*lead, self.channels, self.image_size, self.image_size)
        return x

    def sample(
        self, batch_size: int, n_frames: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """A training batch (batch_size, n_frames, C, H, W): N distinct frames from each set.

        Sets are drawn uniformly with replacement; frames within a set without replacement (by
        sorting random keys, with keys of out-of-range frames pushed last, so it stays one
        vectorised op on the device even when set sizes differ).
        """
        set_idx = torch.randint(len(self), (batch_size,), generator=generator, device=self.device)
        return self.frames(set_idx[:, None], self.sample_frame_indices(set_idx, n_frames, generator))

    def sample_frame_indices(
        self, set_idx: Tensor, n_frames: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """(len(set_idx), n_frames) distinct frame indices within each chosen set."""
        sizes = self.set_sizes[set_idx]
        width = self.max_set_size
        keys = torch.rand(len(set_idx), width, generator=generator, device=self.device)
        keys = keys.masked_fill(
            torch.arange(width, device=self.device) >= sizes[:, None], float("inf")
        )
        return keys.argsort(dim=1)[:, :n_frames]

    def sample_windows(
        self, batch_size: int, length: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """A training batch (batch_size, length, C, H, W) of consecutive frames in stored order.

        Sets are drawn uniformly with replacement, then a start frame uniformly among those that
        leave ``length`` frames (one vectorised op on the device, whatever the set sizes).
        """
        set_idx = torch.randint(len(self), (batch_size,), generator=generator, device=self.device)
        return self.frames(set_idx[:, None], self.window_frame_indices(set_idx, length, generator))

    def window_frame_indices(
        self, set_idx: Tensor, length: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """(len(set_idx), length) indices of consecutive frames from a uniform start in each chosen set."""
        starts = self.set_sizes[set_idx] - length + 1
        start = (torch.rand(len(set_idx), generator=generator, device=self.device) * starts).long()
        start = torch.minimum(start, starts - 1)  # rand() < 1, but float rounding can reach it
        return start[:, None] + torch.arange(length, device=self.device)

    def sequence(self, set_index: int) -> Tensor:
        """All frames of one set in stored order: (T, C, H, W)."""
        t = int(self.set_sizes[set_index])
        return self.frames(torch.tensor(set_index), torch.arange(t))

    def check_frames_per_set(self, n_frames: int) -> None:
        """Raise a clear error if some set cannot give ``n_frames`` distinct frames."""
        from ..errors import UserInputError

        short = int((self.set_sizes < n_frames).sum())
        if short:
            raise UserInputError(
                f"{short} of {len(self)} sets in {self.name!r} have fewer than {n_frames} frames;"
                f" lower --frames or drop the short sets"
            )
