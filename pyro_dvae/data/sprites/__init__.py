"""LPC Sprites: 1296 identities x 178 poses, composited from the shipped LPC layers on the device.

An identity is one choice of (skin, pants, top, hair), 6 variants each, coded as
``k = skin * 216 + pants * 36 + top * 6 + hair``; a pose is one of the 178 non-empty 64 x 64 cells of
the LPC sheet (:data:`SPRITE_CELLS`). Frames are rendered on demand with a few vectorised tensor
ops, so no frame is ever stored and no image is decoded after the layers are loaded once.

Three views are offered:

* :class:`Sprites` (training, the setting of Helminger et al. 2018): one unordered set per
  identity holding all 178 poses (or, with ``poses="protocol"``, the 63 poses of the evaluation
  classes); :meth:`FrameSets.sample` draws N distinct poses per set.
* :func:`sprites_eval_sequences` (evaluation, the protocol of Li & Mandt 2018): per identity the 9
  sequences of 8 frames (walk, spellcast, slash x front, left, right) with their labels.
* :class:`SpritesActions` (training of sequential families such as DSA): those sequences as frame
  sets in temporal order.

Both use the standard identity split (:func:`split_identities`). :func:`export_sprites` and
:func:`preview_sprites` back the ``pyro-dvae data export/preview sprites`` commands.

The package is split by responsibility; every public name is re-exported here:

* :mod:`.catalogue`: labels and constants (attributes, identity codes, sheet cells, evaluation
  classes, the split);
* :mod:`.compositor`: the layer cells and :class:`SpriteCompositor`, which renders frames;
* :mod:`.views`: :class:`Sprites`, :class:`SpritesActions` and :class:`SpritesSequences` /
  :func:`sprites_eval_sequences`;
* :mod:`.export`: :func:`export_sprites` and :func:`preview_sprites`.

The art is dual-licensed CC-BY-SA 3.0 / GPL 3.0; see ``assets/lpc/`` (in :mod:`pyro_dvae.data`) for
the notices and authors.
"""

from ..records import DataSet
from .catalogue import (
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    DIRECTIONS,
    EVAL_ACTIONS,
    EVAL_CELLS,
    EVAL_CLASSES,
    EVAL_COLUMNS,
    EVAL_DIRECTIONS,
    N_CELLS,
    N_IDENTITIES,
    POSE_SETS,
    PROTOCOL_CELLS,
    SPRITE_CELLS,
    SpriteCell,
    cell_index,
    decode_identity,
    encode_identity,
    split_identities,
)

# Public constants outside __all__ that other modules read from here (explicit re-exports).
from .catalogue import FRAME_SIZE as FRAME_SIZE
from .catalogue import N_TRAIN_IDENTITIES as N_TRAIN_IDENTITIES
from .catalogue import N_VARIANTS as N_VARIANTS
from .catalogue import SEQUENCE_LENGTH as SEQUENCE_LENGTH
from .catalogue import SPLIT_SEED as SPLIT_SEED
from .compositor import SpriteCompositor
from .export import export_sprites, preview_sprites
from .views import Sprites, SpritesActions, SpritesSequences, sprites_eval_sequences

DATASET = DataSet(
    name="sprites",
    description="LPC Sprites: 1296 identities x 178 poses, rendered on the device (64x64 RGB)",
    opener=Sprites,
    ordered_opener=SpritesActions,
    ordered_length=SEQUENCE_LENGTH,
    protocol=lambda options: "pyro_dvae.evaluation.sprites:PROTOCOL",
)

__all__ = [
    "DATASET",
    "ATTRIBUTES",
    "ATTRIBUTE_VALUES",
    "DIRECTIONS",
    "EVAL_ACTIONS",
    "EVAL_CELLS",
    "EVAL_CLASSES",
    "EVAL_COLUMNS",
    "EVAL_DIRECTIONS",
    "N_CELLS",
    "POSE_SETS",
    "PROTOCOL_CELLS",
    "N_IDENTITIES",
    "SPRITE_CELLS",
    "SpriteCell",
    "SpriteCompositor",
    "Sprites",
    "SpritesActions",
    "SpritesSequences",
    "cell_index",
    "decode_identity",
    "encode_identity",
    "export_sprites",
    "preview_sprites",
    "split_identities",
    "sprites_eval_sequences",
]
