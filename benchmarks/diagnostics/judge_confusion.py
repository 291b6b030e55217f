"""Which attribute values does a DVAE run's reconstruction confuse? The judge's confusions on the
reconstructions of Sprites sequences (posterior f and z decoded), on test or training identities.

If the training identities are confused as often as the test ones, the run has not yet learned to
draw the difference (more training, not more regularisation); if only the test ones are, its codes
do not generalise to new combinations of attributes.

    python benchmarks/diagnostics/judge_confusion.py runs/quality-dvae-*/seed2 --split train
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine, sprites_posterior  # noqa: E402

from pyro_dvae import posterior
from pyro_dvae.data.sprites import ATTRIBUTES, sprites_eval_sequences
from pyro_dvae.data.sprites.catalogue import ATTRIBUTE_VALUES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a DVAE run on Sprites")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--sequences", type=int, default=1024,
                        help="N sequences spread evenly over the split's identities (default 1024)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    total = len(sprites_eval_sequences(args.split).attrs)
    rows = torch.arange(0, total, max(1, total // args.sequences))[: args.sequences]
    model, judge, labels, f, z, _ = sprites_posterior(args.run, args.split, rows, args.seed)
    with torch.no_grad():
        probs, _ = judge.sprites(posterior.decode(model, f, z))
    predicted = probs.argmax(-1).cpu()
    labels = labels.cpu()
    print(f"machine: {machine()}; run {args.run}; {len(rows)} {args.split} sequences, evaluation seed {args.seed}\n")
    print("| attribute | read from the reconstructions | confusions (true -> read as, share of that value) |")
    print("|---|---|---|")
    for a, name in enumerate(ATTRIBUTES):
        values = ATTRIBUTE_VALUES[name]
        pairs = torch.stack([labels[:, a], predicted[:, a]], dim=1)
        confusions = []
        pair_values, counts = pairs.unique(dim=0, return_counts=True)
        for (true, read), count in zip(pair_values.tolist(), counts.tolist(), strict=True):
            share = count / int((labels[:, a] == true).sum())
            if true != read and share >= 0.02:
                confusions.append((share, f"{values[true]} -> {values[read]}: {100 * share:.0f}%"))
        accuracy = (predicted[:, a] == labels[:, a]).float().mean().item()
        listed = "; ".join(text for _, text in sorted(confusions, reverse=True)) or "none above 2%"
        print(f"| {name} | {100 * accuracy:.1f}% | {listed} |")


if __name__ == "__main__":
    main()
