"""``--lr-anneal``: the last share of a run trained at a lower learning rate.

A budgeted run cannot know in advance how many steps it will take, so the share counts against
whichever bound ends the run first: its planned steps, or this call's wall-clock budget. Counted in
steps it is part of the run's plan (a resume to the same ``--steps`` lowers the rate at the same
step); counted in minutes it is this call's, as the budget is.
"""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig
from ..errors import UserInputError
from ..models.plans import set_learning_rate


def check_plan(cfg: TrainConfig, plan: Any) -> None:
    """Refuse ``--lr-anneal`` before any work for a plan that does not list its optimisers."""
    if cfg.lr_anneal and not hasattr(plan, "optimizers"):
        raise UserInputError(f"{type(plan).__name__} does not list its optimizers, so --lr-anneal cannot lower "
                             "their rate; give the plan an `optimizers` tuple or leave --lr-anneal out")


class Anneal:
    """The learning rate of one call of the training loop: the config's, then (``lower``) a
    ``lr_anneal_factor`` of it. Sets every optimiser the plan lists; a plan that lists none keeps
    its own rate."""

    def __init__(self, cfg: TrainConfig, plan: Any, step: int, total: int, budget_s: float):
        self.cfg, self.plan, self.total, self.budget_s = cfg, plan, total, budget_s
        self.start = 1 - cfg.lr_anneal if cfg.lr_anneal else None  # the share of the run done when it lowers
        # The plans restore the config's rate on resume; a resume inside the last share starts lowered.
        self.lowered = self.start is not None and step >= self.start * total
        self.lr = self._set()

    def due(self, step: int, elapsed_s: float) -> bool:
        """Whether the rate is to be lowered after ``step`` (under torchrun the ranks then agree)."""
        return self.start is not None and not self.lowered and (
            step >= self.start * self.total or elapsed_s >= self.start * self.budget_s)

    def lower(self) -> float:
        self.lowered = True
        return self._set()

    def _set(self) -> float:
        self.lr = self.cfg.lr * (self.cfg.lr_anneal_factor if self.lowered else 1.0)
        for optimizer in getattr(self.plan, "optimizers", ()):
            set_learning_rate(optimizer, self.lr)
        return self.lr
