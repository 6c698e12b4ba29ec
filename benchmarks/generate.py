"""End-to-end generation time with a checkpoint (default: the shipped model), against the clip's own
duration (below 1.0 is faster than real time).

With --compile it times the torch.compile'd transformer last (fp32), the compiling counted apart.
On a machine without the text encoder package (a lent GPU), pass the prompt's text states saved here:

    python -m benchmarks.generate [--checkpoint DIR] [--seconds 4] [--steps N ...] [--repeat R] [--compile]
    python -m benchmarks.generate --save-text-states runs/bench-text.safetensors    # where MiniLM is installed
    python -m benchmarks.generate --text-states runs/bench-text.safetensors         # on the GPU machine
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import machine, print_table
from kinema.models.text import SavedTextStates
from kinema.pipeline import GenerationRequest, Pipeline, resolve_precision

PROMPT = "a red sphere rolls from left to right"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, nargs="*", default=[None])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time the compiled transformer (fp32)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--save-text-states", metavar="FILE", help="save the prompt's text states and stop")
    parser.add_argument("--text-states", metavar="FILE", help="use text states saved by --save-text-states")
    args = parser.parse_args()
    if args.save_text_states:
        pipe = Pipeline.from_checkpoint(args.checkpoint)
        negative = GenerationRequest(PROMPT).negative_prompt or ""
        SavedTextStates.save(pipe.text_encoder, [PROMPT, negative], args.save_text_states)
        print(f"saved text states of {PROMPT!r} and the unconditional prompt to {args.save_text_states}")
        return
    started = time.perf_counter()
    text = SavedTextStates.load(args.text_states) if args.text_states else None
    pipe = Pipeline.from_checkpoint(args.checkpoint, device=args.device, text_encoder=text)
    load = time.perf_counter() - started
    rows = []
    variants = [("fp32", "fp32", False), ("bf16", "bf16", False)] + [("fp32 compiled", "fp32", True)] * args.compile
    for label, precision, compiled in variants:
        pipe.set_precision(precision)
        if compiled:
            pipe.compile()
        for steps in args.steps:
            request = GenerationRequest(PROMPT, seconds=args.seconds, steps=steps,
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
