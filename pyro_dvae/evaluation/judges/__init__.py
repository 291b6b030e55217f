"""Judges: classifiers trained on labelled data that score what a model generates.

* Sprites judge: four 6-way frame-level heads (skin, pants, top, hair) and a 9-way head for the
  action class of an 8-frame sequence (the Li & Mandt 2018 protocol), trained on the labelled
  sequences of the 1000 train identities.
* Digit judge: a 10-way classifier of 64x64 Moving MNIST frames with one digit, trained on the
  train split (disjoint digit images from the test split).
* Digit-pair judge: from a 64x64 frame with two digits, the unordered pair of their classes (55
  ways) and the centres of their boxes, trained on the two-digit train split.

Judges read 64x64 frames. A model trained at a smaller ``image_size`` is judged on its outputs
upsampled to 64 by nearest neighbour (:func:`to_judge_size`); so that this costs the judge no
accuracy on real frames, it is trained with the same round trip (area-downsampling to 32 or 16,
then nearest upsampling) on part of its batches.

The judges of the default settings ship with the package (``shipped/``); a judge of other
settings is trained on first use and cached under ``$PYRO_DVAE_CACHE/judges`` (default
``~/.cache/pyro-dvae/judges``). Both are keyed by a hash of the data version and the judge
settings and saved with the safe checkpoint functions (nothing in the file can execute code).

The package is split by responsibility; every public name is re-exported here:

* :mod:`.base`: what every kind shares: the :class:`JudgeKind` record (found by name through the
  registered data sets' protocols, :func:`judge_kind`), :class:`JudgeSettings` and the cache key
  (:func:`judge_key`), the :class:`Judge` wrapper, the resolution round trip (:func:`resample`,
  :func:`to_judge_size`, :func:`round_trip`) and the shared training pieces;
* :mod:`.sprites`: the Sprites judge network, its data, loss and accuracy (its ``JUDGE`` record);
* :mod:`.digits`: the digit judge network, its data, loss and accuracy (its ``JUDGE`` record);
* :mod:`.pairs`: the digit-pair judge, the same pieces;
* :mod:`.store`: :func:`train_judge` for either kind, judge files and the cache
  (:func:`save_judge`, :func:`load_judge`, :func:`get_judge`).
"""

from .base import (
    JUDGE_SIZE,
    JUDGE_VERSION,
    Judge,
    JudgeKind,
    JudgeSettings,
    augment,
    data_version,
    default_settings,
    judge_key,
    judge_kind,
    judge_kinds,
    resample,
    round_trip,
    to_judge_size,
)
from .digits import N_DIGITS, DigitJudgeNet, crop_around_centre, judge_digits_accuracy
from .pairs import N_PAIRS, PAIRS, PairJudgeNet, judge_pairs_accuracy, matched_distances, pair_index
from .sprites import N_ACTIONS, N_ATTRIBUTE_VALUES, FrameEncoder, SpritesJudgeNet, judge_sprites_accuracy
from .store import cache_dir, get_judge, load_judge, save_judge, train_judge

__all__ = [
    "JUDGE_SIZE",
    "JUDGE_VERSION",
    "N_ACTIONS",
    "N_ATTRIBUTE_VALUES",
    "N_DIGITS",
    "N_PAIRS",
    "PAIRS",
    "DigitJudgeNet",
    "FrameEncoder",
    "PairJudgeNet",
    "Judge",
    "JudgeKind",
    "JudgeSettings",
    "SpritesJudgeNet",
    "cache_dir",
    "crop_around_centre",
    "augment",
    "data_version",
    "default_settings",
    "get_judge",
    "judge_digits_accuracy",
    "judge_key",
    "judge_kind",
    "judge_kinds",
    "judge_pairs_accuracy",
    "judge_sprites_accuracy",
    "load_judge",
    "matched_distances",
    "pair_index",
    "resample",
    "round_trip",
    "save_judge",
    "to_judge_size",
    "train_judge",
]
