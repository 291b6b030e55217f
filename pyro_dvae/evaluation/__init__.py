"""Evaluation: metric functions, judge classifiers and the protocols of the labelled data sets.

``evaluate_run(load_run(path))`` returns the report that ``pyro-dvae evaluate`` prints and writes;
see ``docs/metrics.md`` for what each number means. A labelled data set's evaluation is a
:class:`Protocol` record (:mod:`.protocol`; the built-ins: :mod:`.sprites`, :mod:`.digits`).
"""

from .judges import Judge, JudgeSettings, default_settings, get_judge, load_judge, save_judge, train_judge
from .protocol import GENERIC, Protocol, protocol_for
from .report import evaluate_run, format_report

__all__ = [
    "GENERIC",
    "Judge",
    "JudgeSettings",
    "Protocol",
    "default_settings",
    "evaluate_run",
    "format_report",
    "get_judge",
    "load_judge",
    "protocol_for",
    "save_judge",
    "train_judge",
]
