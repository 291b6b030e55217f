"""The two-digit Moving MNIST protocol: the pair of digits must follow f, their positions z.

Every frame is read by the digit-pair judge (:mod:`.judges.pairs`): the unordered pair of digit
classes and the two box centres. With labels (the generated data set) the references are the
generator's pair and centres; without them (the public ``mnist_test_seq.npy``, or any grey data
evaluated with ``--protocol moving-mnist``) the reference pair of a sequence is the judge's most
frequent reading of its real frames, and the reference centres its reading of each real frame:
the same report, marked label-free. docs/metrics.md defines every term.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import posterior
from ..data.moving_mnist import box_centres
from ..errors import UserInputError
from ..models.base import SequenceModel
from ..runs import Run
from .judges import Judge
from .judges.pairs import CENTRE_TOLERANCE_PX, JUDGE, matched_distances, pair_index
from .protocol import (
    Batch,
    Protocol,
    Sums,
    frame_set_batches,
    mean_of,
    ordered_test_sequences,
    resampled_dynamics,
    resampled_static,
)


def _labels(data, sets: Tensor, frames: Tensor) -> dict[str, Tensor]:
    return {"pair": pair_index(data.labels[sets]), "centres": box_centres(data.positions[sets[:, None], frames])}


def _grey(run: Run) -> None:
    channels = run.config.model.channels
    if channels != 1:
        raise UserInputError(f"the digit-pair judge reads grey frames, but this run's frames have {channels} "
                             "channels; evaluate it with its own data's protocol")


def _labelled_batches(run: Run, limit: int | None, batch_size: int):
    return frame_set_batches(run, limit, batch_size, _labels)


def _label_free_batches(run: Run, limit: int | None, batch_size: int):
    _grey(run)
    return frame_set_batches(run, limit, batch_size)


def modal_pair(pairs: Tensor) -> Tensor:
    """The most frequent pair index along the last dimension (ties: the smallest index)."""
    return pairs.mode(-1).values


def _references(judge: Judge, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(pair per sequence (B,), centres per frame (B, T, 2, 2)) to compare with, and the judge's
    readings of the real frames (pair probabilities, centres)."""
    probs, centres = judge.digit_pairs(batch.x)
    if "pair" in batch.labels:
        return batch.labels["pair"], batch.labels["centres"], probs, centres
    return modal_pair(probs.argmax(-1)), centres, probs, centres


def _terms(model: SequenceModel, judge: Judge, batch: Batch, codes: posterior.Codes,
           generator: torch.Generator) -> tuple[Sums, None]:
    """Pair accuracy of real, reconstructed, f-resampled, z-resampled and swapped frames; positions.

    A swap keeps sequence A's f and takes sequence B's z's: every frame should show A's pair with
    the two digits at B's centres in that frame (distance per digit, under the better matching).
    """
    x = batch.x
    f, z = codes
    pair, centres, real_probs, real_centres = _references(judge, batch)
    per_frame = pair[:, None].expand(x.shape[:2])
    out: Sums = {}

    def judged(prefix: str, frames: Tensor, reference_centres: Tensor | None) -> None:
        probs, found = judge.digit_pairs(frames)
        out.update(mean_of(f"{prefix}pair", probs.argmax(-1) == per_frame))
        if reference_centres is not None:
            distance = matched_distances(found, reference_centres)
            out.update(mean_of(f"{prefix}position_error_px", distance))
            out.update(mean_of(f"{prefix}within_2px", (distance <= CENTRE_TOLERANCE_PX).all(-1)))

    out.update(mean_of("reconstruction.real_pair", real_probs.argmax(-1) == per_frame))
    if "pair" in batch.labels:  # the judge's own error, the floor of every position error below
        out.update(mean_of("reconstruction.real_position_error_px", matched_distances(real_centres, centres)))
    judged("reconstruction.reconstructed_", posterior.decode(model, f, z), centres)

    # f resampled, z kept: one pair along the whole sequence, the digits where A's were.
    probs, found = judge.digit_pairs(posterior.decode(model, resampled_static(model, f, generator), z))
    read = probs.argmax(-1)
    out.update(mean_of("dynamics_kept.pair_constant", read == modal_pair(read)[:, None]))
    out.update(mean_of("dynamics_kept.position_error_px", matched_distances(found, centres)))

    judged("static_kept.", posterior.decode(model, f, resampled_dynamics(model, f, z, generator)), None)

    partner = torch.randperm(len(x), generator=generator, device=x.device)
    judged("swap.", posterior.decode(model, f, z[partner]), centres[partner])
    return out, None


def _sequences(run: Run, length: int, limit: int | None) -> tuple[Tensor, dict]:
    return ordered_test_sequences(run, length, limit, lambda data, n: {"pair": pair_index(data.labels[:n])})


def _label_free_sequences(run: Run, length: int, limit: int | None) -> tuple[Tensor, dict]:
    _grey(run)
    return ordered_test_sequences(run, length, limit)


def _judge_predictions(judge: Judge, context: Tensor, predicted: Tensor, labels: dict) -> dict:
    """The pair of every predicted frame: the labelled pair, or (label-free) the judge's most
    frequent reading of the reconstructed context."""
    pair = labels["pair"] if "pair" in labels else modal_pair(judge.digit_pairs(context)[0].argmax(-1))
    read = judge.digit_pairs(predicted)[0].argmax(-1)  # (B, H)
    return {"pair_per_step": (read == pair[:, None]).float().mean(0).tolist()}


LABEL_FREE = Protocol(name="moving-mnist (label-free)", judge=JUDGE, batches=_label_free_batches, terms=_terms,
                      prediction=(5, 10), sequences=_label_free_sequences, judge_predictions=_judge_predictions,
                      labelled=False)
PROTOCOL = Protocol(name="moving-mnist", judge=JUDGE, batches=_labelled_batches, terms=_terms, prediction=(5, 10),
                    sequences=_sequences, judge_predictions=_judge_predictions, label_free=LABEL_FREE)
