"""Shared benchmark helpers: this machine's matmul peak, timing, and a printed table."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch


def machine() -> str:
    """A label for absolute figures: CPU model, cores, torch threads, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads{gpu}"


def timeit(
    fn: Callable[[], object], repeat: int = 5, warmup: int = 1, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median seconds of `fn` over `repeat` runs.

    clock: `time.perf_counter` (wall) or `time.process_time` (CPU seconds of this process, all threads):
    on a machine shared with other work, CPU time counts what a run did rather than how long it waited.
    """
    for _ in range(warmup):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(clock() - start)
    return sorted(times)[len(times) // 2]


def matmul_peak(
    dtype: torch.dtype = torch.float32, size: int = 1024, device: str = "cpu", clock: Callable[[], float] = time.perf_counter
) -> float:
    """Achieved GFLOP/s of a square matmul: the reference every throughput figure is divided by."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = timeit(lambda: a @ b, repeat=7, clock=clock)
    return 2 * size**3 / seconds / 1e9


def print_table(title: str, rows: list[dict]) -> None:
    """Rows of equal keys as an aligned text table."""
    if not rows:
        return
    keys = list(rows[0])
    cells = [[str(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print(f"\n{title}")
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
