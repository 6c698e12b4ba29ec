"""Regenerate the README gallery from a checkpoint: GIFs and PNG strips of the gallery prompts.

    python docs/make_gallery.py [--checkpoint DIR] [--seeds 0 1] [--check 8]

Writes NAME-SEED.gif and NAME-SEED.png per prompt and seed, and all.png: the first seed's strips stacked.
--check N also counts, over seeds 0..N-1, the samples that show the named colours throughout and moving
the named way (kinema.evaluation.gallery), and writes the counts to check.json. It also generates
prompts that differ only in "right" or "left" at the same seeds, and counts the seeds whose object goes
the way its prompt says against those that go the same way whatever the prompt says.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from kinema.evaluation.gallery import GALLERY, check_gallery, mirror_check, word_sensitivity
from kinema.io import contact_sheet, save_gif, save_strip
from kinema.pipeline import GenerationRequest, Pipeline
from kinema.world import render_clip

SECONDS = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--check", type=int, default=0, metavar="N", help="check N seeds per prompt (0: no check)")
    parser.add_argument("--out", default="docs/media/gallery")
    args = parser.parse_args()
    pipe = Pipeline.from_checkpoint(args.checkpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []  # the first seed's clip of every prompt: the README's all.png, one row each
    for item in GALLERY:
        for seed in args.seeds:
            result = pipe.generate(GenerationRequest(item.prompt, seconds=SECONDS, seed=seed))
            save_gif(out / f"{item.name}-{seed}.gif", result.frames, result.fps)
            save_strip(out / f"{item.name}-{seed}.png", result.frames, count=8)
            if seed == args.seeds[0]:
                rows.append(result.frames)
            print(f"{item.name} seed {seed}: {result.timings['total']:.1f} s")
    if rows:  # a 256-colour palette keeps the README image small; the strips beside it stay full colour
        Image.fromarray(contact_sheet(rows, 8)).quantize(256).save(out / "all.png", optimize=True)
    if args.check:
        def generate(prompt: str, seed: int):
            return pipe.generate(GenerationRequest(prompt, seconds=SECONDS, seed=seed)).frames

        def report(name: str, seed: int, result: dict) -> None:
            print(f"check {name} seed {seed}: {'pass' if result['passed'] else 'fail'}", flush=True)

        summary = check_gallery(generate, range(args.check), progress=report)
        for row in summary["rows"]:
            print(f"{row['name']:15s} passed {row['passed']}/{row['samples']} "
                  f"(colours throughout {row['colours']}, motion {row['motion']})")
        print(f"all: {summary['passed']}/{summary['samples']} = {summary['share']:.2f}")
        mirrors = mirror_check(generate, range(args.check))
        for row in mirrors["rows"]:
            print(f"{row['right']!r} / {row['left']!r}: follows the prompt at {row['follows']} of "
                  f"{row['measured']} seeds, same way for both at {row['same_way']}")
        summary["mirrors"] = mirrors
        # The same measure without sampling: how far the clean estimate moves when only the words change,
        # on world clips whose start does not give the way away (the "heading" family).
        clips = []
        for seed in range(8):
            clip = render_clip(seed, "heading", 128, 128, fps=8.0, num_frames=17)
            clips.append((clip.frames, clip.captions[0]))
        summary["word_sensitivity"] = {}
        for first_frame in (False, True):
            rows = word_sensitivity(pipe, clips, times=(1.0, 0.9), first_frame=first_frame)
            summary["word_sensitivity"]["image_to_video" if first_frame else "text_to_video"] = rows
            for row in rows:
                print(f"right/left swapped{' (first frame given)' if first_frame else ''}, t = {row['t']:g}: "
                      f"clean estimate moves {row['change']:.4f} (its error: {row['error']:.4f})")
        summary["checkpoint"] = str(args.checkpoint or "shipped")
        (out / "check.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
