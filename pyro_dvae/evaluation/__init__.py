"""Evaluation: metric functions, judge classifiers and the per-data-source protocols.

``evaluate_run(load_run(path))`` returns the report that ``pyro-dvae evaluate`` prints and writes;
see ``docs/metrics.md`` for what each number means.
"""

from .judges import Judge, JudgeSettings, default_settings, get_judge, load_judge, save_judge, train_judge
from .protocols import evaluate_run, format_report, protocol_for

__all__ = [
    "Judge",
    "JudgeSettings",
    "default_settings",
    "evaluate_run",
    "format_report",
    "get_judge",
    "load_judge",
    "protocol_for",
    "save_judge",
    "train_judge",
]
