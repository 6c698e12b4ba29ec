"""End-to-end generation time with a checkpoint (default: the shipped model), against the clip's own
duration (below 1.0 is faster than real time).

With --compile it times the torch.compile'd transformer last (fp32), the compiling counted apart.

    python -m benchmarks.generate [--checkpoint DIR] [--seconds 4] [--steps N ...] [--repeat R] [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import machine, print_table
from kinema.pipeline import GenerationRequest, Pipeline, resolve_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, nargs="*", default=[None])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time the compiled transformer (fp32)")
    args = parser.parse_args()
    started = time.perf_counter()
    pipe = Pipeline.from_checkpoint(args.checkpoint)
    load = time.perf_counter() - started
    rows = []
    variants = [("fp32", "fp32", False), ("bf16", "bf16", False)] + [("fp32 compiled", "fp32", True)] * args.compile
    for label, precision, compiled in variants:
        pipe.set_precision(precision)
        if compiled:
            pipe.compile()
        for steps in args.steps:
            request = GenerationRequest("a red sphere rolls from left to right", seconds=args.seconds, steps=steps,
                                        check_safety=False)
            warm = time.perf_counter()
            pipe.generate(request)  # warm-up: text cache, allocator, compiling
            warm = time.perf_counter() - warm
            best = None
            for seed in range(args.repeat):
                request.seed = seed
                result = pipe.generate(request)
                if best is None or result.timings["total"] < best.timings["total"]:
                    best = result
            total = best.timings["total"]
            rows.append({
                "precision": label, "steps": steps or pipe.cfg.sampling.steps,
                "clip": f"{best.seconds:g} s {best.summary()['size']} @ {best.fps:g} fps",
                "denoise s": f"{best.timings['denoise']:.2f}", "decode s": f"{best.timings['decode']:.2f}",
                "total s": f"{total:.2f}", "x real time": f"{total / best.seconds:.2f}",
                "first run s": f"{warm:.1f}",
            })
    print_table(f"generation ({machine()}; load {load:.1f} s, torch threads {torch.get_num_threads()}; "
                f"--precision auto picks {resolve_precision('auto', pipe.device)} here)", rows)


if __name__ == "__main__":
    main()
