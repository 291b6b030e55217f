"""What every report shares: the output folder, ``index.md`` and ``results.json``, seeding."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure

from .. import plotting
from ..atomic import write_text_atomic
from ..errors import UserInputError

INDEX_FILE = "index.md"
RESULTS_FILE = "results.json"

Log = Callable[[str], None]


def _silent(_: str) -> None:
    pass


# -- the output folder and its index ---------------------------------------------------------------
def output_folder(out: str | Path) -> Path:
    """Create ``out`` if needed; an existing file or an uncreatable path is a user error."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; pass a folder (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(f"cannot create output folder {out} ({err.strerror}); pass a writable --out") from None
    return out


def _format(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table (floats to 4 significant digits)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_format(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def dataframe_table(frame) -> str:
    """A pandas DataFrame (e.g. ``az.summary``) as a markdown table, index first."""
    return markdown_table(["", *map(str, frame.columns)],
                          [[index, *row] for index, *row in frame.itertuples()])


@dataclass
class Report:
    """Figures, numbers and tables written to ``out``, listed in ``index.md`` and ``results.json``."""

    out: Path
    title: str
    context: dict[str, object]
    figures: list[tuple[str, str]] = field(default_factory=list)
    numbers: dict[str, tuple[object, str]] = field(default_factory=dict)
    tables: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    def figure(self, name: str, fig: Figure, caption: str) -> Path:
        path = plotting.save_figure(fig, self.out / f"{name}.png")
        self.figures.append((path.name, caption))
        return path

    def number(self, key: str, value: object, meaning: str) -> None:
        self.numbers[key] = (value, meaning)

    def table(self, heading: str, markdown: str) -> None:
        self.tables.append((heading, markdown))

    def leave_out(self, section: str, reason: str) -> None:
        """Record a section that could not be made, and why (listed in index.md)."""
        self.left_out.append(f"{section}: {reason}")

    def write(self) -> Path:
        """Write ``index.md`` and ``results.json``; returns the index's path."""
        results = {**self.context, **{key: value for key, (value, _) in self.numbers.items()}}
        write_text_atomic(self.out / RESULTS_FILE, json.dumps(results, indent=2) + "\n")
        lines = [f"# {self.title}", ""]
        lines += [f"- {key}: {_format(value)}" for key, value in self.context.items()]
        lines += ["", "## Figures", ""]
        for name, caption in self.figures:
            lines += [f"### {name}", "", caption, "", f"![{caption}]({name})", ""]
        if self.numbers:
            lines += ["## Numbers", f"(also in {RESULTS_FILE})", "",
                      markdown_table(["quantity", "value", "meaning"],
                                     [[k, v, m] for k, (v, m) in self.numbers.items()]), ""]
        for heading, markdown in self.tables:
            lines += [f"## {heading}", "", markdown, ""]
        if self.left_out:
            lines += ["## Left out", "", *[f"- {line}" for line in self.left_out], ""]
        index = self.out / INDEX_FILE
        write_text_atomic(index, "\n".join(lines))
        return index


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """Seed torch's RNG (Pyro samples from it) for the block and give a generator on ``device``.

    The caller's RNG state is restored afterwards.
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield torch.Generator(device).manual_seed(seed)
