"""`kinema cache`: encode a dataset once into latents (and keep its captions) for repeated training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from kinema.checkpoint import disk_writes, load_state, state_bytes
from kinema.config import RunConfig
from kinema.errors import ConfigError


def build_cache(run: RunConfig, out: str | Path, count: int, batch_size: int = 8, shard_size: int = 1024,
                show_progress: bool = True, start: int = 0) -> Path:
    """Encode samples start .. start+count-1 of run.data with the autoencoder of run.train.init_from into `out`.

    Captions are written with their shard, so a cache that is interrupted keeps every whole shard and
    stays readable. A folder that already holds N samples is extended when `start` is N.
    """
    from kinema.models.vae import VideoAutoencoder
    from kinema.train.data import build_dataset
    from kinema.train.trainer import adopt_autoencoder

    if not run.train.init_from:
        raise ConfigError("train.init_from: the cache needs a checkpoint with a trained autoencoder")
    run.train.stage = "dit"
    adopt_autoencoder(run)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "captions.jsonl"
    held = len([line for line in meta_path.read_text().splitlines() if line]) if meta_path.exists() else 0
    if held and start != held:
        raise ConfigError(f"{out} already holds {held} samples: pass --start {held} to extend it, or choose "
                          "an empty folder")
    shard = len(list(out.glob("latents-*.safetensors")))
    vae = VideoAutoencoder(run.model.vae).eval().requires_grad_(False)
    vae.load_state_dict(load_state(run.train.init_from, "vae"))
    dataset = build_dataset(run.data)
    if start < 0 or start >= len(dataset):
        raise ConfigError(f"--start {start}: the data has samples 0 to {len(dataset) - 1}")
    indices = range(start, min(start + count, len(dataset)))
    loader = DataLoader(
        torch.utils.data.Subset(dataset, indices), batch_size=batch_size, num_workers=run.data.num_workers,
        collate_fn=lambda samples: samples,
    )
    latents, pending = [], []
    with meta_path.open("a") as meta:

        def flush() -> None:
            nonlocal latents, pending, shard
            block = torch.cat(latents).contiguous()
            target = out / f"latents-{shard:05d}.safetensors"
            tmp = target.with_name(f".{target.name}.tmp")  # a full disk must not leave half a shard
            try:
                with disk_writes(out, state_bytes({"latent": block})):
                    save_file({"latent": block}, str(tmp))
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            meta.writelines(pending)
            meta.flush()
            latents, pending, shard = [], [], shard + 1

        for samples in tqdm(loader, total=len(loader), disable=not show_progress, desc="encoding", unit="batch"):
            video = torch.stack([s["video"] for s in samples])
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                latents.append(vae.encode_latent(video).float().to(torch.bfloat16))
            for s in samples:
                pending.append(json.dumps({"index": s["index"], "captions": s.get("captions") or [s["caption"]]}) + "\n")
            if sum(len(x) for x in latents) >= shard_size:
                flush()
        if latents:
            flush()
    return out
