"""Simulated + rendered frames per second of the physics world at 128x128: one process, then all cores."""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

from kinema.world import FAMILIES, render_clip
from kinema.world.dataset import _pool_context


def _frames(seed: int, size: int, frames: int) -> int:
    return render_clip(seed, FAMILIES[seed % len(FAMILIES)], size, size, num_frames=frames).num_frames


def main() -> None:
    """Print frames/s single process and with a pool over all cores, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=28, help="clips per measurement (default 28: 4 per family)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    _frames(0, args.size, 2)  # connect and warm up
    start = time.perf_counter()
    total = sum(_frames(seed, args.size, args.frames) for seed in range(args.clips))
    single = total / (time.perf_counter() - start)
    print(f"single process: {single:7.1f} frames/s ({args.clips} clips of {args.frames} frames at {args.size}x{args.size})")

    with ProcessPoolExecutor(args.workers, mp_context=_pool_context()) as pool:
        list(pool.map(_frames, range(args.workers), [args.size] * args.workers, [2] * args.workers))
        start = time.perf_counter()
        seeds = range(args.clips, 3 * args.clips)
        total = sum(pool.map(_frames, seeds, [args.size] * len(seeds), [args.frames] * len(seeds)))
        pooled = total / (time.perf_counter() - start)
    print(f"{args.workers} workers:      {pooled:7.1f} frames/s")
    print(f"speed-up:        {pooled / single:7.2f}x")


if __name__ == "__main__":
    main()
