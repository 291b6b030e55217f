"""Weight averaging (``train.weight_average``): an exponential moving average of the trained weights,
which is what the run keeps and uses once training ends.

At 64x64 the near skin tones move from one checkpoint to the next (a head at 98.5, 99.4, 99.8, then
96.6% over four checkpoints 700 steps apart), while the mean of those four checkpoints' weights
reads 99.4% (docs/ablation.md): the weights wander around a good point, and their average sits
closer to it. The average is kept on the training device and updated after every step with one
fused in-place operation, so it adds no host synchronisation.

The checkpoint's ``model`` holds the averaged weights (what evaluate, sample, predict and a resumed
shipped copy read, with no change to them) and ``model_training`` the weights training continues
from; after the last step the averaged weights replace the trained ones in the model, so the priors
fitted after training and the figures are those of the averaged model. The held-out ELBO logged
during training is the trained weights' (the average is not evaluated between steps).
"""

from __future__ import annotations

import torch

from ..checkpoint import TRAINING_WEIGHTS
from ..errors import UserInputError


class WeightAverage:
    """The moving average of ``model``'s trainable parameters with decay ``decay`` per step."""

    def __init__(self, model: torch.nn.Module, decay: float, averaged: dict | None = None):
        self.decay = decay
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in named]
        self.live = [p for _, p in named]
        start = averaged or {}
        wrong = [name for name, p in named if name in start and (not isinstance(start[name], torch.Tensor)
                                                                  or start[name].shape != p.shape)]
        if wrong:
            raise UserInputError(f"the checkpoint's averaged weights do not match the model ({wrong[0]}): the file "
                                 "is damaged or was edited")
        self.shadow = [start[name].detach().to(p.device, p.dtype).clone() if name in start else p.detach().clone()
                       for name, p in named]
        self.training_state: dict | None = None  # the trained weights, once the average replaced them

    @classmethod
    def start(cls, model: torch.nn.Module, decay: float, payload: dict | None = None) -> WeightAverage | None:
        """The average for a run (None when ``decay`` is 0), continued from a checkpoint's ``payload``
        when that holds one."""
        if not decay:
            return None
        return cls(model, decay, payload["model"] if payload and TRAINING_WEIGHTS in payload else None)

    @torch.no_grad()
    def update(self, step: int) -> None:
        # The decay warms up as (1 + step) / (10 + step): a short run's average is then not its
        # initial weights (the usual correction for an average started at step 0).
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.live], 1 - decay)

    def checkpoint(self, model: torch.nn.Module) -> dict:
        """The two sets of weights to save: ``model`` (averaged) and :data:`TRAINING_WEIGHTS`."""
        state = model.state_dict()
        if self.training_state is not None:  # after training: the model holds the average already
            return {"model": state, TRAINING_WEIGHTS: self.training_state}
        return {"model": {**state, **dict(zip(self.names, self.shadow, strict=True))}, TRAINING_WEIGHTS: state}

    @torch.no_grad()
    def use_average(self, model: torch.nn.Module) -> None:
        """Put the averaged weights into ``model`` for what follows training; the trained ones are
        kept for the checkpoint, so that a resumed run continues from them."""
        self.training_state = {name: value.clone() for name, value in model.state_dict().items()}
        for live, average in zip(self.live, self.shadow, strict=True):
            live.copy_(average)
