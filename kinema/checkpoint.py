"""Checkpoint folders: config.toml, dit.safetensors, vae.safetensors, card.md; written atomically."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kinema.config import ModelConfig, dump_toml, from_dict, load_toml, to_dict
from kinema.errors import DISK_FULL, CheckpointError, InputError, file_error

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


def state_bytes(*states: dict[str, torch.Tensor] | None, dtype: torch.dtype | None = None) -> int:
    """Bytes the tensors of `states` take on disk (floating ones as `dtype` when given), headers aside."""
    total = 0
    for state in states:
        for tensor in (state or {}).values():
            if isinstance(tensor, torch.Tensor):
                size = dtype.itemsize if dtype is not None and tensor.is_floating_point() else tensor.element_size()
                total += tensor.numel() * size
            elif isinstance(tensor, dict):  # an optimizer's per-parameter state
                total += state_bytes(tensor)
    return total


def _disk_full(folder: Path, need: int | None = None) -> InputError:
    free = shutil.disk_usage(folder).free
    needed = f"{need / 2**20:.1f} MiB needed, " if need is not None else ""
    return InputError(f"{folder}: {DISK_FULL} ({needed}{free / 2**20:.1f} MiB free); free some space or "
                      "write somewhere else")


@contextmanager
def disk_writes(folder: str | Path, need: int) -> Iterator[None]:
    """Writing about `need` bytes into `folder`: refused first when they cannot fit, and a full disk met
    anyway is one clear error. safetensors and torch.save report it as "os error 28" or a bare
    "unexpected pos" RuntimeError; a caller removes its partial files after this raises."""
    folder = Path(folder)
    margin = 1 << 20  # headers, config and card
    if shutil.disk_usage(folder).free < need + margin:
        raise _disk_full(folder, need + margin)
    try:
        yield
    except OSError as exc:
        raise file_error(exc, folder) from None
    except (SafetensorError, RuntimeError) as exc:
        code = re.search(r"os error (\d+)", str(exc))
        if code:
            raise file_error(OSError(int(code[1]), os.strerror(int(code[1]))), folder) from None
        if shutil.disk_usage(folder).free < margin:  # what torch.save's "unexpected pos" means
            raise _disk_full(folder) from None
        raise


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
    extra_bytes = sum(Path(source).stat().st_size for source in (extra_files or {}).values())
    try:
        with disk_writes(folder.parent, state_bytes(dit_state, vae_state, dtype=dtype) + extra_bytes):
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
