"""The one-digit Moving MNIST protocol: the digit must follow f, its position z.

Reconstruction and swaps are judged by the digit judge, and a swap's position by the digit's
centre of mass against the generator's true positions; predictions (5 -> 10 frames) by the digit
of every predicted frame. docs/metrics.md defines them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import posterior
from ..data.moving_mnist import load_digits
from ..models.base import SequenceModel
from ..runs import Run
from .judges import Judge, to_judge_size
from .judges.digits import JUDGE
from .metrics import centre_of_mass
from .protocol import Batch, Protocol, Sums, correct, frame_set_batches, mean_of, ordered_test_sequences


def _labels(data, sets: Tensor, frames: Tensor) -> dict[str, Tensor]:
    return {"digit": data.labels[sets, 0], "position": data.positions[sets[:, None], frames, 0],
            "image": data.digit_indices[sets, 0]}


def _batches(run: Run, limit: int | None, batch_size: int):
    return frame_set_batches(run, limit, batch_size, _labels)


def digit_offsets(images: Tensor) -> Tensor:
    """Centre of mass (row, col) of each bundled digit image within its 28x28 box: (n, 2)."""
    pixels = torch.from_numpy(load_digits()[0]).to(images.device)[images].float()
    return centre_of_mass(pixels[:, None])


def _terms(model: SequenceModel, judge: Judge, batch: Batch, codes: posterior.Codes,
           generator: torch.Generator) -> tuple[Sums, None]:
    """Digit accuracy on real, reconstructed and swapped frames; position error of swaps.

    A swap keeps sequence A's f and takes sequence B's z's: the digit should be A's and sit where
    B's digit was. The expected centre of mass is B's true top-left corner plus the centre of mass
    of A's digit image in its box; the error is the distance to the swapped frame's centre (in
    pixels of the 64x64 frame). The same distance to A's own trajectory is reported for scale.
    """
    x, digit = batch.x, batch.labels["digit"]
    f, z = codes
    per_frame = digit[:, None].expand(-1, x.shape[1])
    out: Sums = {}
    for tag, frames in (("real", x), ("reconstructed", posterior.decode(model, f, z))):
        out.update(correct(f"reconstruction.{tag}_digit", judge.digits(frames), per_frame))
    partner = torch.randperm(len(x), generator=generator, device=x.device)
    swapped = posterior.decode(model, f, z[partner])
    out.update(correct("swap.digit", judge.digits(swapped), per_frame))
    centre = centre_of_mass(to_judge_size(swapped))
    offset = digit_offsets(batch.labels["image"])[:, None, :]
    position = batch.labels["position"].to(x.dtype)
    out.update(mean_of("swap.position_error_px", (centre - position[partner] - offset).norm(dim=-1)))
    out.update(mean_of("swap.position_error_static_source_px", (centre - position - offset).norm(dim=-1)))
    return out, None


def _sequences(run: Run, length: int, limit: int | None) -> tuple[Tensor, dict]:
    return ordered_test_sequences(run, length, limit, lambda data, n: {"digit": data.labels[:n, 0]})


def _judge_predictions(judge: Judge, context: Tensor, predicted: Tensor, labels: dict) -> dict:
    """The digit of every predicted frame."""
    digits = judge.digits(predicted).argmax(-1)  # (B, H)
    return {"digit_per_step": (digits == labels["digit"][:, None]).float().mean(0).tolist()}


PROTOCOL = Protocol(name="moving-mnist-1", judge=JUDGE, batches=_batches, terms=_terms, prediction=(5, 10),
                    sequences=_sequences, judge_predictions=_judge_predictions)
