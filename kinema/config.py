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
    latent_channels: int = 16
    base_channels: int = 32
    # One level per entry; every level after the first halves space and time (so 3 levels: 4x in time).
    channel_mult: tuple[int, ...] = (1, 2, 4)
    # Residual blocks per level; the decoder gets more, since decode runs at every generation.
    encoder_blocks: tuple[int, ...] = (1, 1, 1)
    decoder_blocks: tuple[int, ...] = (1, 2, 2)
    patch_size: int = 2  # pixel-unshuffle stem: patch_size x the level downsampling = spatial_downsample
    temporal_downsample: int = 4
    spatial_downsample: int = 8
    # Latents are normalised as (z - latent_shift) * latent_scale before the transformer sees them.
    latent_shift: float = 0.0
    latent_scale: float = 1.0
    # Parameter-free space/time-to-channel shortcuts around every resampling step and the bottleneck
    # (as in DC-AE): the network starts near a box-filter codec and learns the residual.
    shortcuts: bool = True


@dataclass
class DiTConfig:
    """Spacetime diffusion transformer over 1x2x2 latent patches."""

    latent_channels: int = 16
    patch_size: tuple[int, int, int] = (1, 2, 2)
    depth: int = 6
    width: int = 256
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384
    qk_norm: bool = True
    gradient_checkpointing: bool = False
    rope_theta: float = 10000.0
    # Add the masked mean of the text token states to the timestep conditioning.
    pooled_text: bool = True
    # Two more input channels holding each patch's x and y in the frame (-1 to 1). RoPE gives attention
    # relative positions only, so without them the model cannot tell the left of the frame from the right
    # and where an object starts comes from the noise alone, whatever the prompt says.
    position_channels: bool = False
    # One more input channel holding each latent frame's place in the window (-1 first, 1 last; needs
    # position_channels). Without it a token knows where it is across the frame but not when: RoPE is
    # relative in time too, so "on the left at the start, on the right at the end" (what "moves to the
    # right" means in a clip) cannot be tied to the words except through the noise's own layout.
    time_channel: bool = False
    # One adaLN projection shared by all blocks plus a learned table per block (as Wan does) instead
    # of a Linear(width, 6 width) in every block: ~6 width^2 fewer parameters per block.
    shared_modulation: bool = True
    # A text-conditioned layout prior: a linear map from the pooled text to the coefficients of a
    # low-frequency cosine basis (this many per axis: time, height, width) over the latent, added to the
    # clean-latent estimate in proportion to the noise level; 0: none. Near pure noise the right estimate
    # is the mean video for the prompt (where objects start and go), which the transformer could only
    # reach through products of small weights; this gives the text a first-order path to the layout.
    layout_prior: int = 0


@dataclass
class TextConfig:
    """Which frozen text encoder produces token states for cross-attention."""

    kind: str = "minilm"  # "minilm" (packaged all-MiniLM-L6-v2) or "hf" (a local path)
    path: str = ""
    max_tokens: int = 32
    # Hidden states joined along the feature axis, as indices into (embeddings, layer 1, ..., last):
    # -1 is the last layer; adding 0 (the embedding layer, a token's own identity and position) keeps
    # words apart that the last layer of a sentence-embedding model nearly merges ("left" and "right").
    # dit.text_dim must be the encoder width times the number of layers.
    layers: tuple[int, ...] = (-1,)


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
    # Time shift of the sampling schedule (see flow.apply_shift); 0: from the latent's token count. A
    # checkpoint trained with train.time_shift samples best with the same value.
    shift: float = 0.0


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
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give a TOML config file (see configs/)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; give a TOML config file (see configs/)") from None
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


@dataclass
class DataConfig:
    """Where training clips come from and the shapes they are cut to."""

    source: str = "world"  # "world" (rendered on the fly), "folder" (videos + captions), "cache" (latents)
    path: str = ""
    width: int = 128
    height: int = 128
    num_frames: int = 17
    fps: float = 8.0
    image_fraction: float = 0.1
    families: list[str] = field(default_factory=list)
    # Extra (width, height, num_frames) buckets for folder data; each batch has one shape.
    buckets: list[list[int]] = field(default_factory=list)
    num_workers: int = 1
    seed: int = 0


@dataclass
class TrainConfig:
    """One training run: which stage, how long, how often to save."""

    stage: str = "dit"  # "vae" or "dit"
    out_dir: str = "runs/train"
    init_from: str = ""  # checkpoint folder whose autoencoder (and transformer, if present) to start from
    steps: int = 1000
    batch_size: int = 8
    lr: float = 3e-4
    # Learning-rate multipliers by parameter-name prefix, e.g. {layout = 10.0}, for a head added with zero
    # weights to a trained model (dit.layout_prior); world-s's 10x try on its prior doubled the loss.
    lr_scales: dict[str, float] = field(default_factory=dict)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    decay_steps: int = 0  # fall linearly to min_lr_ratio·lr over the last decay_steps before `steps`; 0: constant
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    # How often each known-frames strategy is drawn for a transformer sample (kinema.conditioning
    # MASK_STRATEGIES: none, first, first_k, last_k, both_ends, scattered); relative weights, unnamed ones
    # 0. Empty: the default mix (half text-only, the rest image, extension and interpolation tasks).
    known_frames: dict[str, float] = field(default_factory=dict)
    # Shift of the logit-normal training times towards noise (flow.apply_shift); 0: from the token count.
    # Near t = 1 a sample's layout is decided, and the default puts few training samples there.
    time_shift: float = 0.0
    precision: str = "auto"  # "auto": bf16 autocast on GPU, fp32 on CPU; or "fp32", "bf16"
    parallel: str = "ddp"  # "ddp" or "fsdp" when launched with torchrun
    compile: bool = False  # torch.compile the model's forward (the first steps pay a minute or two of compiling)
    checkpoint_every: int = 500
    keep_last: int = 2
    sample_every: int = 0  # transformer stage: write a sample video from the EMA weights every N steps
    sample_prompt: str = "a red sphere rolls from left to right"
    log_every: int = 10
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0: no limit
    seed: int = 0
    # Autoencoder stage loss weights. Squared error is what PSNR measures; L1 alone favours the floor
    # (a median) over the small objects, which is why it is off by default.
    kl_weight: float = 1e-6
    mse_weight: float = 1.0
    l1_weight: float = 0.0
    ssim_weight: float = 0.0
    crop: int = 0  # random spatial crop for the autoencoder stage (0: whole frame)
    # Autoencoder stage: train the decoder only. The latents stay exactly as they were, so a transformer
    # trained on them (or a latent cache) stays valid.
    freeze_encoder: bool = False


@dataclass
class RunConfig:
    """A training config file: [model], [data] and [train] tables."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
