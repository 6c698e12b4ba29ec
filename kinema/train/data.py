"""Training data: world clips by index, a folder of the user's videos, and a latent cache.

Every source is map-style and indexed by a global sample number, so a batch is a pure function of
(seed, step, rank): resuming continues exactly, and N ranks see disjoint slices of one global batch.
A finite source maps sample number n to item ``epoch_item(n, len)``: every epoch visits each item once,
in an order of its own. The sample number (not the item) stays the sample's ``index``, which keys its
noise, timestep and caption, so an item seen again in a later epoch is seen at a new noise level.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

from kinema.config import DataConfig
from kinema.errors import ConfigError, InputError
from kinema.io import fit_frames, frames_to_tensor, read_media

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
WORLD_SEED_BASE = 1_000_000  # world clip i uses seed WORLD_SEED_BASE + data.seed * 10**7 + i; eval uses others


@lru_cache(maxsize=4)
def _epoch_order(epoch: int, length: int) -> torch.Tensor:
    return torch.randperm(length, generator=torch.Generator().manual_seed(epoch))


def epoch_item(number: int, length: int) -> int:
    """The item that global sample `number` reads from `length` items: each epoch is a permutation."""
    epoch, position = divmod(int(number), length)
    return int(_epoch_order(epoch, length)[position])


class WorldClips(Dataset):
    """Clip i of the procedural world, rendered when asked for."""

    def __init__(self, data: DataConfig, length: int = 10**9):
        self.data = data
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        from kinema.world import render_clip

        seed = WORLD_SEED_BASE + self.data.seed * 10**7 + int(index)
        clip = render_clip(
            seed,
            family=random.Random(seed).choice(self.data.families) if self.data.families else None,
            width=self.data.width,
            height=self.data.height,
            fps=self.data.fps,
            seconds=None,
            num_frames=self.data.num_frames,
        )
        caption = random.Random(seed + 1).choice(clip.captions)
        return {"video": frames_to_tensor(clip.frames), "caption": caption, "captions": list(clip.captions),
                "index": int(index)}


def _read_captions(folder: Path) -> dict[str, str]:
    captions: dict[str, str] = {}
    jsonl = folder / "captions.jsonl"
    if jsonl.is_file():
        for number, line in enumerate(jsonl.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ConfigError(f"{jsonl}:{number}: not valid JSON") from None
            key = str(record.get("file") or record.get("id") or "")
            text = record.get("caption") or (record.get("captions") or [""])[0]
            if key:
                captions[Path(key).stem] = str(text)
    return captions


class VideoFolder(Dataset):
    """The user's videos (and images, as one-frame videos) with captions from captions.jsonl or .txt files."""

    def __init__(self, data: DataConfig):
        root = Path(data.path)
        if not root.is_dir():
            raise ConfigError(f"data.path {root}: not a folder; point it at a folder of videos with captions")
        self.data = data
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"data.path {root}: no videos or images found ({', '.join(sorted(VIDEO_SUFFIXES))})")
        captions = _read_captions(root)
        self.items = []
        for path in files:
            if path.stem in captions:
                text = captions[path.stem]
            elif path.with_suffix(".txt").is_file():
                text = path.with_suffix(".txt").read_text().strip()
            else:
                text = ""
            self.items.append((path, text))
        self.buckets = [(data.width, data.height, data.num_frames)] + [tuple(b) for b in data.buckets]
        self.members: list[list[int]] = [[] for _ in self.buckets]  # items of each bucket
        for index in range(len(self.items)):
            self.members[self.bucket_of(index)].append(index)
        self.seed = data.seed

    def __len__(self) -> int:
        return len(self.items)

    def batch_keys(self, step: int, batch_size: int, rank: int, world_size: int) -> list[tuple[int, int]]:
        """One step's keys (sample number, bucket): the whole global batch shares one bucket, drawn by
        the step with odds proportional to the bucket's number of items, so every batch has one shape."""
        bucket = 0
        if len(self.buckets) > 1:
            weights = [len(m) for m in self.members]
            bucket = random.Random(self.seed * 1_000_003 + step).choices(range(len(weights)), weights)[0]
        return [(n, bucket) for n in batch_indices(step, batch_size, rank, world_size)]

    def bucket_of(self, index: int) -> int:
        """The bucket whose aspect ratio is closest to item `index` (cheap: reads the first frame)."""
        if len(self.buckets) == 1:
            return 0
        w, h = read_media(self.items[index][0], max_frames=1).size
        return int(np.argmin([abs(np.log((bw / bh) / (w / h))) for bw, bh, _ in self.buckets]))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        number, bucket = key if isinstance(key, tuple) else (key, None)
        if bucket is None:
            index, bucket = epoch_item(number, len(self.items)), 0
        else:
            index = self.members[bucket][epoch_item(number, len(self.members[bucket]))]
        width, height, num_frames = self.buckets[bucket]
        path, caption = self.items[index]
        try:
            video = read_media(path)
        except InputError:
            raise ConfigError(f"training data {path}: unreadable; remove it or fix it") from None
        frames = video.frames
        if len(frames) > 1:
            start = random.Random(number).randrange(max(1, len(frames) - num_frames + 1))  # new window each epoch
            frames = frames[start : start + num_frames]
            if len(frames) < num_frames:  # pad short clips by holding the last frame
                frames = np.concatenate([frames, np.repeat(frames[-1:], num_frames - len(frames), 0)])
        frames = fit_frames(frames, width, height, "crop")
        return {"video": frames_to_tensor(frames), "caption": caption, "index": int(number), "item": index}


class LatentCache(Dataset):
    """Latents and captions written by `kinema cache`."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        shards = sorted(folder.glob("latents-*.safetensors"))
        if not shards:
            raise ConfigError(f"{folder}: no latents-*.safetensors; build the cache with `kinema cache`")
        self.latents = torch.cat([load_file(str(s))["latent"] for s in shards])
        meta = [json.loads(line) for line in (folder / "captions.jsonl").read_text().splitlines() if line]
        self.captions = [m["captions"] for m in meta]
        if len(self.captions) != len(self.latents):
            raise ConfigError(f"{folder}: {len(self.latents)} latents but {len(self.captions)} caption rows")

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, number: int) -> dict:
        index = epoch_item(number, len(self.latents))
        captions = self.captions[index]
        caption = captions[random.Random(int(number) * 7919).randrange(len(captions))] if captions else ""
        return {"latent": self.latents[index].float(), "caption": caption, "index": int(number), "item": index}


def build_dataset(data: DataConfig) -> Dataset:
    """The dataset a [data] table names."""
    if data.source == "world":
        return WorldClips(data)
    if data.source == "folder":
        return VideoFolder(data)
    if data.source == "cache":
        return LatentCache(data.path)
    raise ConfigError(f"data.source {data.source!r}: choose world, folder or cache")


def collate(samples: list[dict]) -> dict:
    """Stack tensors, keep captions as a list."""
    out: dict = {"caption": [s["caption"] for s in samples], "index": torch.tensor([s["index"] for s in samples])}
    for key in ("video", "latent"):
        if key in samples[0]:
            out[key] = torch.stack([s[key] for s in samples])
    return out


def batch_indices(step: int, batch_size: int, rank: int, world_size: int) -> list[int]:
    """Global sample numbers of this rank's share of step `step`'s batch (they never repeat)."""
    start = (step * world_size + rank) * batch_size
    return list(range(start, start + batch_size))
