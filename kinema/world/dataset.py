"""Many clips: a rendered folder (`render_dataset`) and an endless training stream (`WorldStream`)."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from tqdm import tqdm

from kinema.errors import InputError
from kinema.io import frames_to_tensor, write_video
from kinema.world.clip import check_family, check_size, frame_count, render_clip
from kinema.world.families import FAMILIES


def clip_seed(seed: int, index: int) -> int:
    """The seed of clip `index` in a dataset rendered with `seed`."""
    return (seed * 1_000_003 + index) % 2**31


def _render_one(job: dict) -> dict:
    clip = render_clip(job["seed"], job["family"], job["width"], job["height"], job["fps"], job["seconds"], job["num_frames"])
    out = Path(job["out"])
    write_video(out / "clips" / f"{job['id']}.mp4", clip.frames, clip.fps)
    truth_path = out / "truth" / f"{job['id']}.json"
    tmp = truth_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(clip.truth))
    os.replace(tmp, truth_path)
    return {
        "id": job["id"],
        "captions": clip.captions,
        "family": clip.family,
        "seconds": clip.num_frames / clip.fps,
        "size": f"{job['width']}x{job['height']}",
        "fps": clip.fps,
        "seed": job["seed"],
    }


def _pool_context():
    # fork starts workers in milliseconds; fall back to spawn where fork does not exist
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def render_dataset(
    out_dir: str | os.PathLike,
    count: int,
    width: int = 128,
    height: int = 128,
    fps: float = 8.0,
    seconds: float | None = 2.0,
    num_frames: int | None = None,
    family: str | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Render `count` clips into out_dir: clips/*.mp4, truth/*.json and captions.jsonl, on a process pool."""
    if not isinstance(count, int) or count < 1:
        raise InputError(f"count {count!r} must be a positive number of clips")
    check_size(width, height)
    check_family(family)
    frame_count(fps, seconds, num_frames)
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise InputError(f"workers {workers!r} must be at least 1")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    (out / "clips").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    jobs = [
        {"id": f"{i:06d}", "seed": clip_seed(seed, i), "family": family, "width": width, "height": height,
         "fps": fps, "seconds": seconds, "num_frames": num_frames, "out": str(out)}
        for i in range(count)
    ]
    bar = tqdm(total=count, desc="rendering clips", unit="clip", disable=not progress)
    if workers == 1:
        records = []
        for job in jobs:
            records.append(_render_one(job))
            bar.update()
    else:
        with ProcessPoolExecutor(min(workers, count), mp_context=_pool_context()) as pool:
            records = []
            for record in pool.map(_render_one, jobs, chunksize=max(1, min(8, count // (4 * workers)))):
                records.append(record)
                bar.update()
    bar.close()
    lines = "".join(json.dumps(r) + "\n" for r in records)
    tmp = out / "captions.jsonl.tmp"
    tmp.write_text(lines)
    os.replace(tmp, out / "captions.jsonl")
    return out


def _stream_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class WorldStream(IterableDataset):
    """Endless clips rendered on the fly: {"video": (3, T, H, W) in [-1, 1], "caption": str, "family": str}.

    Each DataLoader worker and each DDP rank draws its own seed stream. With probability
    `image_fraction` a sample is a single frame (T = 1).
    """

    def __init__(
        self,
        width: int = 128,
        height: int = 128,
        num_frames: int = 17,
        fps: float = 8.0,
        families: list[str] | tuple[str, ...] | None = None,
        seed: int = 0,
        image_fraction: float = 0.0,
    ):
        check_size(width, height)
        frame_count(fps, None, num_frames)
        self.families = tuple(families) if families else FAMILIES
        for family in self.families:
            check_family(family)
        if not 0.0 <= image_fraction <= 1.0:
            raise InputError(f"image_fraction {image_fraction!r} must be between 0 and 1")
        self.width, self.height, self.num_frames, self.fps = width, height, num_frames, fps
        self.seed, self.image_fraction = seed, image_fraction

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rank, _ = _stream_rank()
        rng = np.random.default_rng([self.seed, rank, worker, workers])
        while True:
            clip_seed_ = int(rng.integers(2**31))
            family = self.families[int(rng.integers(len(self.families)))]
            frames = 1 if rng.random() < self.image_fraction else self.num_frames
            clip = render_clip(clip_seed_, family, self.width, self.height, self.fps, None, frames)
            caption = clip.captions[int(rng.integers(len(clip.captions)))]
            yield {"video": frames_to_tensor(clip.frames), "caption": caption, "family": clip.family}
