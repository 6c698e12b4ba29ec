"""`make bench`: run every benchmark in its quick form and print their tables one after another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kinema.checkpoint import default_checkpoint

RUNS = [
    ["benchmarks.world"],
    ["benchmarks.vae"],
    ["benchmarks.train", "--quick"],
    ["benchmarks.safety"],
    ["benchmarks.watermark", "--clips", "10"],
    ["benchmarks.server"],
    ["benchmarks.peer", "--quick"],
]


def main() -> int:
    runs = list(RUNS)
    if (default_checkpoint() / "dit.safetensors").is_file():
        runs += [["benchmarks.generate"], ["benchmarks.scaling", "--quick"]]
    failed = []
    for run in runs:
        name = run[0]
        if not (Path(__file__).parent / f"{name.split('.')[1]}.py").is_file():
            continue
        print(f"\n===== {' '.join(run)} =====", flush=True)
        code = subprocess.call([sys.executable, "-m", *run])
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
