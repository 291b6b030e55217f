"""Matplotlib figures. Functions return Figures; callers save them (``save_figure``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files, never shown on a screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402


def to_image(frame: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) array for imshow (grey frames become RGB)."""
    img = frame.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def tile(frames: Tensor, pad: int = 1) -> np.ndarray:
    """(R, K, C, H, W) -> one (R*(H+pad), K*(W+pad), 3) mosaic with grey gutters."""
    r, k, _, h, w = frames.shape
    out = np.full((r * (h + pad) - pad, k * (w + pad) - pad, 3), 0.5, dtype=np.float32)
    for i in range(r):
        for j in range(k):
            out[i * (h + pad): i * (h + pad) + h, j * (w + pad): j * (w + pad) + w] = to_image(
                frames[i, j]
            )
    return out


def frames_grid(frames: Tensor, title: str | None = None,
                row_labels: Sequence[str] | None = None,
                col_labels: Sequence[str] | None = None, cell_inches: float = 0.6) -> Figure:
    """A grid of frames (R, K, C, H, W) with optional row and column labels."""
    r, k = frames.shape[:2]
    h, w = frames.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(3.0, k * cell_inches + 1.2), max(2.0, r * cell_inches + 0.8)))
    ax.imshow(tile(frames), interpolation="nearest")
    ax.set_xticks([j * (w + 1) + w / 2 for j in range(k)] if col_labels else [])
    ax.set_yticks([i * (h + 1) + h / 2 for i in range(r)] if row_labels else [])
    if col_labels:
        ax.set_xticklabels(col_labels, fontsize=7, rotation=90)
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def manifold_figure(panels: Tensor, titles: Sequence[str] | None = None) -> Figure:
    """Latent manifolds (K, s, s, C, H, W), one panel per identity, side by side (paper Fig. 3)."""
    k, s = panels.shape[:2]
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(tile(panels[i], pad=0), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(titles[i] if titles else f"f of identity {i}", fontsize=9)
    fig.suptitle(f"decoded {s}x{s} grid over p(z | f): z1 down, z2 across", fontsize=9)
    fig.tight_layout()
    return fig


def training_curves(metrics: Sequence[dict]) -> Figure:
    """ELBO per frame against step for the training batches and the held-out sets."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for split, style in (("train", "-"), ("test", "o-")):
        rows = [m for m in metrics if m.get("split") == split]
        if rows:
            ax.plot([m["step"] for m in rows], [m["elbo_per_frame"] for m in rows], style,
                    label="held-out" if split == "test" else "training batches", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("ELBO per frame (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save and close a figure; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
