"""`kinema eval`: run the world-simulation benchmark through a checkpoint and write a report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kinema.cli.generate import PRECISION_CHOICES, parse_size
from kinema.errors import InputError


def run_eval(args: argparse.Namespace) -> int:
    """Load the checkpoint, run the suite and the bounds, write DIR/report.html and DIR/scores.json."""
    import torch

    from kinema.evaluation.runner import pipeline_generator, run_benchmark
    from kinema.evaluation.suite import build_suite
    from kinema.pipeline import MAX_GUIDANCE, Pipeline

    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps {args.steps}: choose at least 1")
    if args.guidance is not None and not 1.0 <= args.guidance <= MAX_GUIDANCE:
        raise InputError(f"--guidance {args.guidance}: choose a scale from 1 (no guidance) to {MAX_GUIDANCE:g}")
    if args.worst < 0:
        raise InputError(f"--worst {args.worst}: choose 0 (no strips) or more")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise InputError(f"--out {args.out}: is a file; give a folder for the report")
    torch.manual_seed(args.seed)
    pipe = Pipeline.from_checkpoint(args.checkpoint)
    pipe.set_precision("bf16" if args.bf16 else args.precision)
    width, height = args.size or (128, 128)
    try:  # fail now, not after the first case, if the checkpoint cannot make this size
        pipe.resolve_size(width, height)
    except InputError as exc:
        raise InputError(f"{exc}; pass --size" if args.size is None else str(exc)) from None
    cases = build_suite(args.cases, width, height, fps=8.0, num_frames=args.frames)
    generate = pipeline_generator(pipe, seed=args.seed, steps=args.steps, width=width, height=height,
                                  guidance=args.guidance)
    info = {"checkpoint": pipe.info.id, "checkpoint_sha256": pipe.info.sha256, "generated_size": f"{width}x{height}",
            "seed": args.seed, "steps": args.steps or pipe.cfg.sampling.steps,
            "guidance": args.guidance if args.guidance is not None else pipe.cfg.sampling.guidance_scale,
            "precision": pipe.precision}
    results = run_benchmark(generate, cases, args.out, info, bounds=not args.no_bounds, worst=args.worst,
                            progress=not args.quiet)
    if args.json:
        print(json.dumps({k: v for k, v in results.items() if k != "case_scores"}, indent=1))
    else:
        overall = results["runs"]["model"]["overall"].get("score")
        upper = results["runs"].get("upper", {}).get("overall", {}).get("score")
        print(f"score {overall:.3f}" + (f" (upper bound {upper:.3f})" if upper is not None else "")
              + f"; {results['seconds_per_case']:.2f} s per case; wrote {args.out}/report.html and {args.out}/scores.json")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `kinema eval`."""
    p = subparsers.add_parser(
        "eval", help="score a checkpoint on the physics-world benchmark",
        description="Run the fixed, versioned suite of physics-world cases (text, image, extension and "
        "interpolation tasks) through a checkpoint, score each against its simulation, and compare with the "
        "bounds: a perturbed second simulation (upper), the first frame held still and noise (lower).",
        epilog="example: kinema eval --cases 100 --out runs/eval --steps 20",
    )
    p.add_argument("--checkpoint", help="checkpoint folder (default: the shipped model, or $KINEMA_CHECKPOINT)")
    p.add_argument("--cases", type=int, default=100, help="how many of the suite's cases to run, in order (default 100)")
    p.add_argument("--out", default="runs/eval", help="folder for report.html, scores.json, charts and strips (default runs/eval)")
    p.add_argument("--size", type=parse_size, help="WIDTHxHEIGHT to generate at (default 128x128); scored at least 64x64")
    p.add_argument("--frames", type=int, default=17, help="frames per case, 1+4k (default 17: 2 s at 8 fps)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; the same seed gives the same scores (default 0)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the checkpoint's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale, 1 = none (default: the "
                   "checkpoint's)")
    p.add_argument("--worst", type=int, default=4, help="strips of this many lowest-scoring cases in the report (default 4)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                   help="how the transformer runs (default fp32, so that scores compare across machines; auto: "
                        "bf16 autocast where bf16 is native, as generation does; scores may differ slightly)")
    p.add_argument("--bf16", action="store_true", help="the same as --precision bf16")
    p.add_argument("--no-bounds", action="store_true", help="skip the upper bound and the still/noise floors")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_eval)
