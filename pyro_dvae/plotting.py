"""Matplotlib figures. Functions return Figures; callers save them (``save_figure``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# No backend is chosen here: notebooks keep their inline backend, the CLI picks Agg, and
# matplotlib itself falls back to Agg on a machine without a display.
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from torch import Tensor

from .atomic import atomic_write


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


def manifold_figure(panels: Tensor, titles: Sequence[str] | None = None,
                    axis_names: tuple[str, str] = ("z1", "z2")) -> Figure:
    """Latent manifolds (K, s, s, C, H, W), one panel per identity, side by side (paper Fig. 3).

    ``axis_names`` name the grid's two directions in z space (rows, columns).
    """
    k, s = panels.shape[:2]
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(tile(panels[i], pad=0), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(titles[i] if titles else f"f of identity {i}", fontsize=9)
    fig.suptitle(f"decoded {s}x{s} grid over p(z | f): {axis_names[0]} down, {axis_names[1]} across",
                 fontsize=9)
    fig.tight_layout()
    return fig


def reconstruction_figure(x: Tensor, recon: Tensor, labels: Sequence[str] | None = None,
                          title: str | None = None) -> Figure:
    """Each set (K, T, C, H, W) in one row with its reconstruction in the row below."""
    labels = labels or [str(i) for i in range(len(x))]
    rows = torch.stack([x, recon], 1).flatten(0, 1)
    row_labels = [f"{kind} {label}" for label in labels for kind in ("data", "recon")]
    return frames_grid(rows, title, row_labels=row_labels)


def swap_figure(static_frames: Tensor, dynamic_frames: Tensor, cells: Tensor,
                static_labels: Sequence[str], dynamic_labels: Sequence[str],
                title: str | None = None) -> Figure:
    """A swap grid: first row the dynamics' sources (B, C, H, W), first column the identities'
    sources (A, C, H, W), cell (a, b) the frame with a's f and b's z (A, B, C, H, W)."""
    corner = torch.ones_like(static_frames[:1])  # white: not a frame
    top = torch.cat([corner, dynamic_frames])[None]
    body = torch.cat([static_frames[:, None], cells], 1)
    return frames_grid(torch.cat([top, body]), title, row_labels=["z from:", *static_labels],
                       col_labels=["f from:", *dynamic_labels])


def _thumbnail(ax: Axes, frame: Tensor, xy: tuple[float, float], above: bool) -> None:
    # Sized in screen points whatever the image size, so 16 px and 64 px frames read alike.
    image = OffsetImage(to_image(frame), zoom=32 / frame.shape[-1], interpolation="nearest")
    ax.add_artist(AnnotationBbox(image, xy, xybox=(0, 28 if above else -28), boxcoords="offset points",
                                 arrowprops={"arrowstyle": "-", "color": "0.4"}, pad=0.1,
                                 annotation_clip=False))


def dynamics_figure(loc: Tensor, scale: Tensor, frames: Tensor, title: str | None = None) -> Figure:
    """One sequence's dynamics over its frame index (paper Fig. 4b).

    For each z dimension, the posterior mean of q(z_t | f, x_t) against t (loc, scale: (T, z_dim))
    with a band of +-2 posterior sd, and the frames (T, C, H, W) at the mean's minimum and maximum.
    """
    t, z_dim = loc.shape
    mean, sd = loc.detach().cpu().numpy(), scale.detach().cpu().numpy()
    steps = np.arange(t)
    fig, axes = plt.subplots(z_dim, 1, figsize=(7, 2.4 * z_dim + 0.6), sharex=True, squeeze=False)
    for d, ax in enumerate(axes[:, 0]):
        ax.fill_between(steps, mean[:, d] - 2 * sd[:, d], mean[:, d] + 2 * sd[:, d], alpha=0.25,
                        label="+-2 sd")
        ax.plot(steps, mean[:, d], ".-", markersize=3, label="posterior mean")
        low, high = int(mean[:, d].argmin()), int(mean[:, d].argmax())
        _thumbnail(ax, frames[low], (low, mean[low, d]), above=False)
        _thumbnail(ax, frames[high], (high, mean[high, d]), above=True)
        ax.margins(y=1.0)  # room for the thumbnails inside the panel
        ax.set_ylabel(f"z{d + 1}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("frame index (temporal order)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def trajectories_figure(posterior: Tensor, prior: Tensor, coordinates: Sequence[str],
                        labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Dynamic codes against the frame index, one panel per coordinate (at most two).

    ``posterior`` and ``prior`` are (K, T, D): sequence k's posterior trajectory is drawn solid and
    a prior trajectory drawn for the same sequence dashed, in the same colour.
    """
    n_panels = min(2, posterior.shape[-1])
    fig, axes = plt.subplots(1, n_panels, figsize=(4.5 * n_panels, 3.2), squeeze=False)
    frames = range(posterior.shape[1])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for d, ax in enumerate(axes[0]):
        for k in range(posterior.shape[0]):
            colour = colours[k % len(colours)]
            label = labels[k] if labels is not None else f"seq {k}"
            ax.plot(frames, posterior[k, :, d].cpu(), "-o", color=colour, markersize=3, label=label)
            ax.plot(frames, prior[k, :, d].cpu(), "--", color=colour, alpha=0.7)
        ax.set_xlabel("frame")
        ax.set_ylabel(coordinates[d])
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


_METRIC_LABELS = {"elbo_per_frame": "ELBO per frame (nats)"}


def training_curves(metrics: Sequence[dict], metric: str = "elbo_per_frame") -> Figure:
    """A per-frame training metric (default the ELBO) against step, training batches and held-out sets."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for split, style in (("train", "-"), ("test", "o-")):
        rows = [m for m in metrics if m.get("split") == split and metric in m]
        if rows:
            ax.plot([m["step"] for m in rows], [m[metric] for m in rows], style,
                    label="held-out" if split == "test" else "training batches", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric.replace("_", " ")))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save (atomically: never a torn file) and close a figure; returns the path."""
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, dpi=dpi, format=Path(path).suffix[1:] or "png"))
    finally:
        plt.close(fig)
