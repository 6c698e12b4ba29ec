"""End-to-end generation time and peak memory against clip duration and against resolution.

Each point runs in a fresh subprocess that loads the pipeline, makes one short warm-up clip at the
point's size (text cache, allocator, kernel choice), then the timed clip, and reports its resident-set
high-water mark (ru_maxrss): torch allocates natively, so tracemalloc would miss most of the memory,
and a fresh process keeps one point's peak from hiding the next. Every point uses the same prompt and
seed 0; the safety check is off, as in benchmarks.generate. Beside wall seconds each point records the
CPU seconds its generation used (all threads): on a machine shared with other work, that counts what the
generation did rather than how long it waited for a core.

Duration: 4, 8, 16, 32 and 60 s at 128x128, 8 fps. A clip longer than one window (17 frames by
default) is made window by window, each window extending the frames before it, so long clips measure
the extension path. Resolution: 64, 128, 192 and 256 px squares at 4 s. The table, a CSV and a PNG chart
go to --out; no video is written.

    python -m benchmarks.scaling [--checkpoint DIR | --random tiny|default] [--steps N] [--quick] [--bf16]
                                 [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import machine, print_table
from kinema.checkpoint import default_checkpoint, load_config, save_checkpoint
from kinema.config import DiTConfig, ModelConfig, SamplingConfig, VAEConfig

PROMPT = "a red sphere rolls from left to right"
SEED = 0
FPS = 8.0
DURATION_SIDE = 128
RESOLUTION_SECONDS = 4.0
DURATIONS = {False: (4.0, 8.0, 16.0, 32.0, 60.0), True: (4.0, 16.0, 60.0)}  # keyed by --quick
SIDES = {False: (64, 128, 192, 256), True: (64, 128, 256)}
RESULT_TAG = "scaling-point "
REPO_ROOT = Path(__file__).resolve().parent.parent


def random_config(size: str) -> ModelConfig:
    """A config to initialise at random: `tiny` as in the tests, `default` as ModelConfig's defaults.

    Both keep the default sampling limits, so every point of the sweep is a valid size; random weights
    cost exactly what trained ones do, so timings of `default` stand for a trained model of that config.
    """
    if size == "tiny":
        return ModelConfig(name="random-tiny", vae=VAEConfig(base_channels=8), dit=DiTConfig(depth=1, width=32, heads=2),
                           sampling=SamplingConfig())
    return ModelConfig(name="random-default")


def write_random_checkpoint(folder: Path, size: str) -> Path:
    """Save a randomly initialised checkpoint of `random_config(size)` into `folder`."""
    from kinema.models.dit import DiffusionTransformer
    from kinema.models.vae import VideoAutoencoder

    cfg = random_config(size)
    torch.manual_seed(SEED)
    dit, vae = DiffusionTransformer(cfg.dit), VideoAutoencoder(cfg.vae)
    return save_checkpoint(folder, cfg, dit.state_dict(), vae.state_dict(), card=f"# {cfg.name}\nrandom weights\n")


def rss_mib() -> float:
    """This process's resident set now, MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_point(point: dict) -> dict:
    """Load, warm up and time one generation in this process; run only in a fresh subprocess."""
    from kinema.pipeline import GenerationRequest, Pipeline
    from kinema.plan import plan_request

    started = time.perf_counter()
    pipe = Pipeline.from_checkpoint(point["checkpoint"])
    pipe.autocast = point["bf16"]
    load = time.perf_counter() - started
    loaded_mib = rss_mib()
    side, s = point["side"], pipe.cfg.sampling
    warmup = GenerationRequest(PROMPT, seconds=s.window_frames / FPS, width=side, height=side, fps=FPS, seed=SEED,
                               steps=1, check_safety=False)
    pipe.generate(warmup)
    request = GenerationRequest(PROMPT, seconds=point["seconds"], width=side, height=side, fps=FPS, seed=SEED,
                                steps=point["steps"], check_safety=False)
    plan = plan_request(pipe, request, side, side, FPS)
    cpu_started = time.process_time()
    result = pipe.generate(request)
    cpu = time.process_time() - cpu_started
    return {**point, "frames": len(result.frames), "latent_frames": plan.known_latent.shape[1],
            "windows": len(plan.windows), "steps": point["steps"] or s.steps, "load_s": load,
            **{f"{k}_s": v for k, v in result.timings.items()}, "cpu_s": cpu, "loaded_mib": loaded_mib,
            "peak_mib": peak_rss_mib()}


def run_point(point: dict) -> dict:
    """Measure one point in a fresh interpreter and return its figures (or its error)."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--point", json.dumps(point)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {**point, "error": f"exit {proc.returncode}: {tail}"}


def table_row(r: dict) -> dict:
    """One printed row."""
    row = {"series": r["series"], "size": f"{r['side']}x{r['side']}", "video s": f"{r['seconds']:g}"}
    if "error" in r:
        return {**row, "frames": "error: " + r["error"]}
    return {**row, "frames": r["frames"], "latents": r["latent_frames"], "windows": r["windows"], "steps": r["steps"],
            "denoise s": f"{r['denoise_s']:.2f}", "decode s": f"{r['decode_s']:.2f}", "total s": f"{r['total_s']:.2f}",
            "cpu s": f"{r['cpu_s']:.2f}", "s per video s": f"{r['total_s'] / r['seconds']:.3f}", "peak MiB": f"{r['peak_mib']:.0f}",
            "over load MiB": f"{r['peak_mib'] - r['loaded_mib']:.0f}"}


def linearity(results: list[dict]) -> list[str]:
    """How far time and memory are from linear in duration and in pixel count."""
    lines = []
    duration = {r["seconds"]: r for r in results if r["series"] == "duration" and "error" not in r}
    if len(duration) >= 2:
        short, long = duration[min(duration)], duration[max(duration)]
        per_second = (long["total_s"] / long["seconds"]) / (short["total_s"] / short["seconds"])
        cpu_per_second = (long["cpu_s"] / long["seconds"]) / (short["cpu_s"] / short["seconds"])
        lines.append(
            f"duration {short['seconds']:g} s -> {long['seconds']:g} s ({long['seconds'] / short['seconds']:.0f}x): "
            f"time per video second x{per_second:.2f} (CPU time x{cpu_per_second:.2f}; 1.00 = linear); peak RSS x{long['peak_mib'] / short['peak_mib']:.2f}, "
            f"peak over load {short['peak_mib'] - short['loaded_mib']:.0f} -> {long['peak_mib'] - long['loaded_mib']:.0f} MiB"
        )
    sides = {r["side"]: r for r in results if r["series"] == "resolution" and "error" not in r}
    if len(sides) >= 2:
        small, large = sides[min(sides)], sides[max(sides)]
        pixels = (large["side"] / small["side"]) ** 2
        lines.append(
            f"resolution {small['side']}^2 -> {large['side']}^2 ({pixels:.0f}x pixels): time x{large['total_s'] / small['total_s']:.2f}, "
            f"time per pixel x{large['total_s'] / small['total_s'] / pixels:.2f} "
            f"(CPU time x{large['cpu_s'] / small['cpu_s'] / pixels:.2f}; 1.00 = linear); "
            f"peak over load {small['peak_mib'] - small['loaded_mib']:.0f} -> {large['peak_mib'] - large['loaded_mib']:.0f} MiB"
        )
    return lines


def write_csv(path: Path, results: list[dict]) -> None:
    """Every measured field of every point, one row each."""
    keys = list(dict.fromkeys(k for r in results for k in r if k != "checkpoint"))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)


def write_chart(path: Path, results: list[dict], title: str) -> None:
    """Two panels, duration and resolution: total time (left axis) and peak RSS (right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (("duration", "seconds", "clip duration, s (128x128, 8 fps)"),
              ("resolution", "side", "square side, px (4 s, 8 fps)"))
    for ax, (series, key, label) in zip(axes, panels, strict=True):
        points = sorted((r for r in results if r["series"] == series and "error" not in r), key=lambda r: r[key])
        if not points:
            ax.set_axis_off()
            continue
        x = [r[key] for r in points]
        seconds = [r["total_s"] for r in points]
        ax.plot(x, seconds, "o-", color="tab:blue", label="generation time, wall")
        ax.plot(x, [r["cpu_s"] for r in points], "^:", color="tab:blue", label="generation time, CPU")
        # The dashed line is what time would be if it grew with video seconds or pixels from the first point.
        base = (x[0] if series == "duration" else x[0] ** 2)
        ax.plot(x, [seconds[0] * (v if series == "duration" else v**2) / base for v in x], "--", color="tab:blue",
                alpha=0.4, label="linear from first point")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds", color="tab:blue")
        twin = ax.twinx()
        twin.plot(x, [r["peak_mib"] for r in points], "s-", color="tab:red", label="peak RSS")
        twin.set_ylabel("peak RSS, MiB", color="tab:red")
        twin.set_ylim(bottom=0)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"against {series}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="checkpoint folder (default: the shipped model)")
    source.add_argument("--random", choices=("tiny", "default"), help="a randomly initialised model instead")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the checkpoint's)")
    parser.add_argument("--quick", action="store_true", help="durations 4, 16, 60 s and sides 64, 128, 256")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in the transformer")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="folder for CSV and PNG")
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: measure one point in this process
    args = parser.parse_args()
    if args.point:
        print(RESULT_TAG + json.dumps(measure_point(json.loads(args.point))), flush=True)
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="kinema-scaling-"))
    try:
        folder = write_random_checkpoint(scratch / "ckpt", args.random) if args.random else Path(
            args.checkpoint or default_checkpoint())
        cfg = load_config(folder)
        s = cfg.sampling
        points = [{"series": "duration", "seconds": sec, "side": DURATION_SIDE} for sec in DURATIONS[args.quick]]
        points += [{"series": "resolution", "seconds": RESOLUTION_SECONDS, "side": side} for side in SIDES[args.quick]
                   if s.min_side <= side <= s.max_side]
        results, measured = [], {}
        started = time.perf_counter()
        for point in points:
            key = (point["seconds"], point["side"])
            if key not in measured:  # 4 s at 128x128 sits in both series: measure it once
                measured[key] = run_point({**point, "checkpoint": str(folder), "steps": args.steps, "bf16": args.bf16})
            results.append({**measured[key], "series": point["series"]})
            print(table_row(results[-1]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    precision = "bf16 autocast" if args.bf16 else "fp32"
    title = (f"{cfg.name}: generation against duration and resolution, {precision}, one fresh process per point "
             f"({time.perf_counter() - started:.0f} s); {machine()}")
    print_table(title, [table_row(r) for r in results])
    for line in linearity(results):
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"scaling-{cfg.name}"
    write_csv(stem.with_suffix(".csv"), results)
    write_chart(stem.with_suffix(".png"), results, title)
    print(f"wrote {stem}.csv and {stem}.png")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
