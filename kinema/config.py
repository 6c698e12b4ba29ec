"""Settings as dataclasses, filled from TOML. Each part imports the class it needs."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kinema.errors import ConfigError

T = TypeVar("T")


@dataclass
class VAEConfig:
    """Causal 3-D video autoencoder: 4x in time, 8x in space."""

    in_channels: int = 3
    latent_channels: int = 8
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 4)
    temporal_downsample: int = 4
    spatial_downsample: int = 8
    # Latents are normalised as (z - latent_shift) * latent_scale before the transformer sees them.
    latent_shift: float = 0.0
    latent_scale: float = 1.0


@dataclass
class DiTConfig:
    """Spacetime diffusion transformer over 1x2x2 latent patches."""

    latent_channels: int = 8
    patch_size: tuple[int, int, int] = (1, 2, 2)
    depth: int = 6
    width: int = 256
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384
    qk_norm: bool = True
    gradient_checkpointing: bool = False


@dataclass
class TextConfig:
    """Which frozen text encoder produces token states for cross-attention."""

    kind: str = "minilm"  # "minilm" (packaged all-MiniLM-L6-v2) or "hf" (a local path)
    path: str = ""
    max_tokens: int = 32


@dataclass
class SamplingConfig:
    """Defaults a checkpoint ships for generation."""

    steps: int = 30
    guidance_scale: float = 4.0
    width: int = 128
    height: int = 128
    fps: float = 8.0
    min_side: int = 64
    max_side: int = 256
    window_frames: int = 17
    context_latent_frames: int = 2


@dataclass
class ModelConfig:
    """Everything a checkpoint's config.toml holds."""

    name: str = "kinema"
    vae: VAEConfig = field(default_factory=VAEConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    text: TextConfig = field(default_factory=TextConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from a (nested) dict, rejecting unknown keys with a clear error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"{where or cls.__name__}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"known keys are {', '.join(sorted(names))}"
        )
    values = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = from_dict(hint, value, f"{where}.{key}" if where else key)
        elif typing.get_origin(hint) is tuple:
            values[key] = tuple(value)
        else:
            values[key] = value
    return cls(**values)


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass -> plain dict that TOML can hold (tuples become lists)."""
    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(obj))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, naming the file in any error."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None


def dump_toml(data: dict[str, Any]) -> str:
    """Write a dict of scalars, lists and nested tables as TOML."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise ConfigError(f"cannot write {type(v).__name__} to TOML")

    lines: list[str] = []

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in d.items() if isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {value(v)}")
        if scalars:
            lines.append("")
        for k, v in tables.items():
            table(f"{prefix}.{k}" if prefix else k, v)

    table("", data)
    return "\n".join(lines).rstrip() + "\n"
