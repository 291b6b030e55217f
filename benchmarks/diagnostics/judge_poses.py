"""What the Sprites judge can read, pose by pose: attribute accuracy on real frames of every pose of
the LPC sheet, grouped by animation and direction, at the size a model sees them.

The judge was trained on the standard protocol's sequences (walk, spellcast, slash facing front,
left, right); a model trained on all 178 poses (``--data-option poses=sheet``) draws the other
poses too when z is resampled, and this table says how far the judge can follow it there.

    python benchmarks/diagnostics/judge_poses.py                 # 32x32 frames (the cpu preset), 296 test identities
    python benchmarks/diagnostics/judge_poses.py --size 64 --identities 100
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine  # noqa: E402

from pyro_dvae.data.sprites import ATTRIBUTES, PROTOCOL_CELLS, SPRITE_CELLS, Sprites
from pyro_dvae.evaluation.judges import default_settings, get_judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="frame size the judge is given (default 32)")
    parser.add_argument("--identities", type=int, default=296, help="test identities (default: all 296)")
    args = parser.parse_args()
    judge = get_judge(default_settings("sprites"), torch.device("cpu"), True)
    data = Sprites("test", image_size=args.size, limit_identities=args.identities)
    sets = torch.arange(len(data))
    labels = data.labels(sets)
    correct: dict[tuple[str, str], list[torch.Tensor]] = defaultdict(list)
    with torch.no_grad():
        for pose, cell in enumerate(SPRITE_CELLS):
            probs = judge.sprites_frames(data.frames(sets, torch.full_like(sets, pose)))
            group = (cell.action, cell.direction + (" (protocol)" if pose in PROTOCOL_CELLS else ""))
            correct[group].append((probs.argmax(-1) == labels).float().mean(0))
    print(f"machine: {machine()}; {len(data)} test identities, {args.size}x{args.size} frames, one frame per row\n")
    print("| animation | direction | poses | " + " | ".join(ATTRIBUTES) + " |")
    print("|---|---|---|" + "---|" * len(ATTRIBUTES))
    for (action, direction), rows in sorted(correct.items()):
        mean = torch.stack(rows).mean(0)
        cells = " | ".join(f"{100 * v:.0f}%" for v in mean.tolist())
        print(f"| {action} | {direction} | {len(rows)} | {cells} |")


if __name__ == "__main__":
    main()
