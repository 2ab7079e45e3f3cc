"""Which channel widths give the seed networks the microplastic study's sizes (SPEC §7.2)?

Lee & Jhang ("Neural Network Analysis for Microplastic Segmentation", Sensors 21(21):7030,
2021) state their networks' equations but not every width; Table 4 gives parameters and FLOPs
at 512×512. For each network this searches the free widths of the architecture SPEC §7.2
fixes (its number of encoder stages): the first stage's width (U-Net feature maps or
MultiResUNet units U, every even number from 8 to 96) and the bottleneck's growth over the
last stage (1: it keeps that width; 2: it doubles it, as every stage does). It counts
parameters and FLOPs with tinyseg's own code, keeps the candidates within 15 % of Table 4 on
both, and ranks them by the root mean square of the two relative errors. The package's
defaults (``NETWORKS``) are the winners.

How FLOPs are counted: 2 per multiply-add of convolutions and transposed convolutions
(``tinyseg_cli.models.describe``; biases, norms and activations left out). Table 4 cannot
count 1 per multiply-add: Quarter MultiResUNet's 21.9 B would then be 83.5 k multiply-adds per
input pixel, more than its 44.5 k parameters, and no network whose layers run at or below the
input's resolution uses a weight more than once per input pixel. Counted as 2, Half U-Net at
64 feature maps matches Table 4 to 0.5 %.

Input channels: 3 (the study's RGB photos of sand). One channel changes every count here by
less than 0.5 %, far inside the 15 % tolerance, so the numbers themselves cannot tell.

    python benchmarks/seed_network_widths.py [--top 3] [--in-channels 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tinyseg_cli.models.describe import forward_flops
from tinyseg_cli.models.seed_networks import NETWORKS, SeedDesign

SIDE = 512  # Table 4's input size
OUT_CHANNELS = 1  # one foreground class
WIDTHS = range(8, 97, 2)
GROWTHS = (1, 2)
TOLERANCE = 0.15  # the bound on both relative errors

# Table 4 of the study: (parameters, FLOPs) at 512×512, by tinyseg's name for the network.
TABLE_4 = {
    "unet-64": (21_977_600, 329.7e9),
    "half-unet": (1_772_400, 204.0e9),
    "multiresunet": (13_546_900, 204.8e9),
    "half-multiresunet": (214_900, 42.9e9),
    "quarter-multiresunet": (44_500, 21.9e9),
}


@dataclass(frozen=True)
class Candidate:
    """One design's counts and their relative errors against Table 4."""

    width: int
    bottleneck_growth: int
    parameters: int
    flops: int
    parameter_error: float
    flop_error: float

    @property
    def error(self) -> float:
        """Root mean square of the two relative errors (what the search minimises)."""
        return ((self.parameter_error**2 + self.flop_error**2) / 2) ** 0.5

    @property
    def within_tolerance(self) -> bool:
        """Both counts within :data:`TOLERANCE` of Table 4."""
        return max(abs(self.parameter_error), abs(self.flop_error)) <= TOLERANCE


def sizes(design: SeedDesign, in_channels: int, side: int = SIDE) -> tuple[int, int]:
    """Parameters and FLOPs of ``design`` on one side×side image, counted on the meta device
    (shapes only: instant even for 30 M parameters)."""
    with torch.device("meta"):
        model = design.build(in_channels, OUT_CHANNELS).eval()
        image = torch.empty(1, in_channels, side, side)
    parameters = sum(p.numel() for p in model.parameters())
    return parameters, forward_flops(model, image)


def candidates(name: str, in_channels: int) -> list[Candidate]:
    """Every width × growth of network ``name``: those within tolerance best first, then the
    rest."""
    target_parameters, target_flops = TABLE_4[name]
    found = []
    for width in WIDTHS:
        for growth in GROWTHS:
            design = replace(NETWORKS[name], width=width, bottleneck_growth=growth)
            parameters, flops = sizes(design, in_channels)
            found.append(
                Candidate(
                    width,
                    growth,
                    parameters,
                    flops,
                    parameters / target_parameters - 1,
                    flops / target_flops - 1,
                )
            )
    return sorted(found, key=lambda c: (not c.within_tolerance, c.error))


def row(name: str, c: Candidate, label: str | None = None) -> str:
    """One table line: ``c`` against Table 4's numbers for ``name``, labelled ``label``."""
    target_parameters, target_flops = TABLE_4[name]
    return (
        f"{label or name:<21} {c.width:>5} {c.bottleneck_growth:>6} "
        f"{c.parameters / 1e6:>9.4f} {target_parameters / 1e6:>9.4f} {c.parameter_error:>+7.1%} "
        f"{c.flops / 1e9:>7.1f} {target_flops / 1e9:>7.1f} {c.flop_error:>+7.1%} {c.error:>6.1%}"
    )


def main(argv: list[str] | None = None) -> int:
    """Search every network of Table 4; exit 1 unless each default is its best fit."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=3, help="candidates shown per network")
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every candidate here")
    args = parser.parse_args(argv)

    header = (
        f"{'network':<21} {'width':>5} {'growth':>6} {'params M':>9} {'study':>9} {'err':>7} "
        f"{'GFLOPs':>7} {'study':>7} {'err':>7} {'rms':>6}"
    )
    print(
        f"{args.in_channels} input channels, {OUT_CHANNELS} output, {SIDE}×{SIDE}; FLOPs = 2 × MACs"
    )
    print(header)
    results, mismatched = {}, []
    for name in TABLE_4:
        ranked = candidates(name, args.in_channels)
        results[name] = ranked
        for c in ranked[: args.top]:
            print(row(name, c))
        design = NETWORKS[name]
        chosen = next(
            c
            for c in ranked
            if (c.width, c.bottleneck_growth) == (design.width, design.bottleneck_growth)
        )
        if chosen is not ranked[0] or not chosen.within_tolerance:
            mismatched.append(name)
        print(row(name, chosen, "  tinyseg default"))
    if args.json:
        payload = {name: [c.__dict__ for c in ranked] for name, ranked in results.items()}
        args.json.write_text(json.dumps(payload, indent=1))
    if mismatched:
        print(f"defaults not the best fit within {TOLERANCE:.0%}: {', '.join(mismatched)}")
        return 1
    print(f"every default is the best fit and within {TOLERANCE:.0%} on both counts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
