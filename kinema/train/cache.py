"""`kinema cache`: encode a dataset once into latents (and keep its captions) for repeated training."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from kinema.checkpoint import load_state
from kinema.config import RunConfig
from kinema.errors import ConfigError


def build_cache(run: RunConfig, out: str | Path, count: int, batch_size: int = 8, shard_size: int = 1024,
                show_progress: bool = True) -> Path:
    """Encode `count` samples of run.data with the autoencoder of run.train.init_from into `out`."""
    from kinema.models.vae import VideoAutoencoder
    from kinema.train.data import build_dataset
    from kinema.train.trainer import adopt_autoencoder

    if not run.train.init_from:
        raise ConfigError("train.init_from: the cache needs a checkpoint with a trained autoencoder")
    run.train.stage = "dit"
    adopt_autoencoder(run)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vae = VideoAutoencoder(run.model.vae).eval().requires_grad_(False)
    vae.load_state_dict(load_state(run.train.init_from, "vae"))
    dataset = build_dataset(run.data)
    count = min(count, len(dataset))
    loader = DataLoader(
        torch.utils.data.Subset(dataset, range(count)), batch_size=batch_size, num_workers=run.data.num_workers,
        collate_fn=lambda samples: samples,
    )
    latents, captions, shard = [], [], 0
    with (out / "captions.jsonl").open("w") as meta:
        for samples in tqdm(loader, total=len(loader), disable=not show_progress, desc="encoding", unit="batch"):
            video = torch.stack([s["video"] for s in samples])
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                latents.append(vae.encode_latent(video).float().to(torch.bfloat16))
            for s in samples:
                captions.append(s.get("captions") or [s["caption"]])
                meta.write(json.dumps({"index": s["index"], "captions": captions[-1]}) + "\n")
            if sum(len(x) for x in latents) >= shard_size:
                save_file({"latent": torch.cat(latents).contiguous()}, str(out / f"latents-{shard:05d}.safetensors"))
                latents, shard = [], shard + 1
        if latents:
            save_file({"latent": torch.cat(latents).contiguous()}, str(out / f"latents-{shard:05d}.safetensors"))
    return out
