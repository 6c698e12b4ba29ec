"""Regenerate the README gallery from a checkpoint: GIFs and PNG strips of the gallery prompts.

    python docs/make_gallery.py [--checkpoint DIR] [--seeds 0 1]

Writes NAME-SEED.gif and NAME-SEED.png per prompt and seed, and all.png: the first seed's strips stacked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from kinema.io import contact_sheet, save_gif, save_strip
from kinema.pipeline import GenerationRequest, Pipeline

PROMPTS = {
    "direction": "a red sphere rolls from left to right",
    "direction-left": "a blue cube slides from right to left",
    "colours": "a yellow sphere and a green cube",
    "collision": "a red sphere rolls from left to right and hits a blue cube, which slides to the right",
    "drop": "a purple ball falls and bounces on the floor",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--out", default="docs/media/gallery")
    args = parser.parse_args()
    pipe = Pipeline.from_checkpoint(args.checkpoint)
    out = Path(args.out)
    rows = []  # the first seed's clip of every prompt: the README's all.png, one row each
    for name, prompt in PROMPTS.items():
        for seed in args.seeds:
            result = pipe.generate(GenerationRequest(prompt, seconds=2.0, seed=seed))
            save_gif(out / f"{name}-{seed}.gif", result.frames, result.fps)
            save_strip(out / f"{name}-{seed}.png", result.frames, count=8)
            if seed == args.seeds[0]:
                rows.append(result.frames)
            print(f"{name} seed {seed}: {result.timings['total']:.1f} s")
    # A 256-colour palette keeps the README image small; the strips beside it stay full colour.
    Image.fromarray(contact_sheet(rows, 8)).quantize(256).save(out / "all.png", optimize=True)


if __name__ == "__main__":
    main()
