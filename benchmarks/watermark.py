"""Watermark robustness: TPR per attack on watermarked clips, false positives on clean clips, PSNR.

    .venv/bin/python benchmarks/watermark.py --clips 100 --jobs 4
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

from kinema.io import read_video, write_video
from kinema.io.frames import fit_frames
from kinema.provenance import detect_watermark, embed_watermark
from kinema.provenance.watermark import P_THRESHOLD

FPS = 8


def synthetic_clip(seed: int, size: int = 128, frames: int = 32) -> np.ndarray:
    """Coloured discs moving over a shaded floor, for when the physics world is not available."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    floor = rng.uniform(60, 180, 3) + (yy / size * rng.uniform(-40, 40))[..., None]
    video = np.repeat(floor[None], frames, axis=0)
    for _ in range(rng.integers(2, 5)):
        colour, (x0, y0), (vx, vy), radius = rng.uniform(0, 255, 3), rng.uniform(10, size - 10, 2), rng.uniform(-3, 3, 2), rng.uniform(6, 20)
        for t in range(frames):
            video[t][(xx - x0 - vx * t) ** 2 + (yy - y0 - vy * t) ** 2 < radius**2] = colour
    return np.clip(video, 0, 255).astype(np.uint8)


def load_clip(seed: int) -> np.ndarray:
    try:
        from kinema.world import render_clip
    except ImportError:
        return synthetic_clip(seed)
    return render_clip(seed, width=128, height=128, fps=FPS, seconds=4).frames


def encode(frames: np.ndarray, crf: int, workdir: Path) -> np.ndarray:
    path = workdir / "attack.mp4"
    write_video(path, frames, FPS, crf=crf)
    return read_video(path).frames


def crop(frames: np.ndarray, share: float = 0.1) -> np.ndarray:
    height, width = frames.shape[1:3]
    top, left = round(height * share), round(width * share)
    return frames[:, top : height - top, left : width - left]


def half(frames: np.ndarray) -> np.ndarray:
    height, width = frames.shape[1:3]
    return fit_frames(frames, width // 4 * 2, height // 4 * 2, "resize")


def attacks(workdir: Path) -> dict:
    """Each attack ends in an H.264 encode (crf 18 unless the attack is the crf), as a shared file would."""
    return {
        "none": lambda f: encode(f, 18, workdir),
        "crf 23": lambda f: encode(f, 23, workdir),
        "crf 28": lambda f: encode(f, 28, workdir),
        "half size": lambda f: encode(half(f), 18, workdir),
        "crop 10%/side": lambda f: encode(crop(f), 18, workdir),
        "trim to 2 s": lambda f: encode(f[: 2 * FPS], 18, workdir),
        "all combined": lambda f: encode(half(crop(f[: 2 * FPS])), 28, workdir),
    }


def psnr(clean: np.ndarray, marked: np.ndarray) -> float:
    mse = np.mean((clean.astype(np.float64) - marked) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def run_clip(seed: int) -> dict:
    """Embed, attack and detect one watermarked clip; run the clean clip 10_000 + seed through two attacks."""
    with tempfile.TemporaryDirectory() as tmp:
        attack_fns = attacks(Path(tmp))
        clean = load_clip(seed)
        payload_id = (seed * 2654435761) % (1 << 24)
        marked = embed_watermark(clean, payload_id)
        marked_results = {name: detect_watermark(attack(marked)) for name, attack in attack_fns.items()}
        # Clean clips under the mildest and the harshest processing.
        other = load_clip(10_000 + seed)
        clean_results = [detect_watermark(attack_fns[name](other)) for name in ("none", "all combined")]
    return {"psnr": psnr(clean, marked), "payload_id": payload_id, "marked": marked_results, "clean": clean_results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100, help="watermarked clips, and as many clean ones")
    parser.add_argument("--jobs", type=int, default=1, help="clips processed in parallel")
    args = parser.parse_args()
    start = time.time()
    with multiprocessing.Pool(args.jobs) as pool:
        runs = pool.map(run_clip, range(args.clips), chunksize=1)
    names = list(runs[0]["marked"])
    clean_p = [r.p_value for run in runs for r in run["clean"]]
    false_positives = sum(r.found for run in runs for r in run["clean"])
    psnrs = [run["psnr"] for run in runs]
    print(f"{args.clips} watermarked clips, {args.clips} clean clips (x2 attacks), threshold p <= {P_THRESHOLD:g}")
    print(f"{'attack':16} {'TPR':>6} {'id ok':>6} {'min z':>6} {'median z':>9}")
    for name in names:
        results = [run["marked"][name] for run in runs]
        z_scores = [r.z_score for r in results]
        id_ok = [r.payload_id == run["payload_id"] for r, run in zip(results, runs, strict=True)]
        print(f"{name:16} {np.mean([r.found for r in results]):6.3f} {np.mean(id_ok):6.3f} {np.min(z_scores):6.2f} "
              f"{np.median(z_scores):9.2f}")
    print(f"false positives: {false_positives}/{len(clean_p)} (smallest clean p-value {min(clean_p):.3g})")
    print(f"PSNR marked vs clean: mean {np.mean(psnrs):.2f} dB, min {np.min(psnrs):.2f} dB")
    print(f"time {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
