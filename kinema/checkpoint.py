"""Checkpoint folders: config.toml, dit.safetensors, vae.safetensors, card.md; written atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kinema.config import ModelConfig, dump_toml, from_dict, load_toml, to_dict
from kinema.errors import CheckpointError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "world-s"


def default_checkpoint() -> Path:
    """The shipped model, or $KINEMA_CHECKPOINT when set."""
    return Path(os.environ.get("KINEMA_CHECKPOINT", DEFAULT_CHECKPOINT))


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[name] = tensor.contiguous()
    return out


def save_checkpoint(
    folder: str | Path,
    cfg: ModelConfig,
    dit_state: dict[str, torch.Tensor] | None = None,
    vae_state: dict[str, torch.Tensor] | None = None,
    card: str | None = None,
    dtype: torch.dtype | None = None,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write a checkpoint folder atomically: build it beside the target, then rename over it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)
    try:
        (tmp / "config.toml").write_text(dump_toml(to_dict(cfg)))
        if dit_state is not None:
            save_file(_cast(dit_state, dtype), str(tmp / "dit.safetensors"))
        if vae_state is not None:
            save_file(_cast(vae_state, dtype), str(tmp / "vae.safetensors"))
        if card is not None:
            (tmp / "card.md").write_text(card)
        for name, source in (extra_files or {}).items():
            shutil.copy2(source, tmp / name)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def resolve(folder: str | Path) -> Path:
    """A checkpoint folder, or a training run folder (then its latest checkpoint)."""
    folder = Path(folder)
    pointer = folder / "latest"
    if pointer.is_file() and not (folder / "config.toml").is_file():
        return folder / pointer.read_text().strip()
    return folder


def load_config(folder: str | Path) -> ModelConfig:
    """Read a checkpoint's config.toml."""
    folder = resolve(folder)
    if not (folder / "config.toml").is_file():
        raise CheckpointError(
            f"{folder}: not a kinema checkpoint (no config.toml); pass a folder written by `kinema train`"
        )
    return from_dict(ModelConfig, load_toml(folder / "config.toml"))


def load_state(folder: str | Path, part: str) -> dict[str, torch.Tensor]:
    """Load `dit` or `vae` weights from a checkpoint folder as float32."""
    path = resolve(folder) / f"{part}.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the checkpoint has no {part} weights")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"{path}: unreadable weights ({exc})") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def checkpoint_hash(folder: str | Path) -> str:
    """sha256 over the weight files, identifying exactly which model made an output."""
    digest = hashlib.sha256()
    for name in ("dit.safetensors", "vae.safetensors"):
        path = Path(folder) / name
        if path.is_file():
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


@dataclass
class CheckpointInfo:
    """What provenance records about the model that made a video."""

    id: str
    sha256: str
    path: str
