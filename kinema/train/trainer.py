"""The trainer: one plain loop for both stages (autoencoder, transformer), single process or torchrun.

Every random draw of a sample (noise, timestep, mask, caption dropout, crop) comes from a generator
seeded by the sample's global number, so a run is a pure function of its config: N ranks reproduce a
single process on the same global batch, and a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from kinema.checkpoint import disk_writes, load_config, load_state, resolve, save_checkpoint, state_bytes
from kinema.config import ModelConfig, RunConfig, dump_toml, to_dict
from kinema.errors import ConfigError, InputError
from kinema.train import distributed
from kinema.train.data import batch_indices, build_dataset, collate

STATE_FILE = "train_state.pt"


def sample_generator(seed: int, global_index: int, salt: int = 0) -> torch.Generator:
    """A generator private to one sample of the run."""
    return torch.Generator().manual_seed((seed * 1_000_003 + global_index * 7_919 + salt) % (2**63))


class StepBatches(torch.utils.data.Sampler):
    """Yields this rank's indices for steps start..steps-1, so a resumed run reads the same data."""

    def __init__(self, start: int, steps: int, batch_size: int, env: distributed.Dist, dataset):
        self.start, self.steps, self.batch_size, self.env = start, steps, batch_size, env
        self.keys = getattr(dataset, "batch_keys", batch_indices)  # a bucketed source picks one shape per step

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield self.keys(step, self.batch_size, self.env.rank, self.env.world_size)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


def _autocast(precision: str, device: torch.device):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"train.precision {precision!r}: choose auto, fp32 or bf16")
    return nullcontext()


class Stage:
    """What differs between training the autoencoder and the transformer."""

    model: nn.Module

    def loss(self, batch: dict, step: int, seed: int) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


class VAEStage(Stage):
    """Autoencoder: reconstruct world clips (and single frames) through a KL bottleneck."""

    def __init__(self, run: RunConfig):
        from kinema.models.vae import VideoAutoencoder

        self.run = run
        self.model = VideoAutoencoder(run.model.vae)
        if run.train.init_from:
            self.model.load_state_dict(load_state(run.train.init_from, "vae"))
        if run.train.freeze_encoder:
            if not run.train.init_from:
                raise ConfigError("train.freeze_encoder needs train.init_from: an autoencoder whose encoder to keep")
            self.model.encoder.requires_grad_(False)

    def loss(self, batch: dict, step: int, seed: int) -> tuple[torch.Tensor, dict]:
        from kinema.models.losses import vae_loss

        video = batch["video"]
        self.last_video = video  # fit_latent_stats at checkpoint time reads a real batch
        train = self.run.train
        # Some batches are images, so the first-frame path (an image is a one-frame video) is trained too.
        if self.run.data.image_fraction > 0:
            if torch.rand((), generator=sample_generator(seed, step, 11)) < self.run.data.image_fraction:
                video = video[:, :, :1]
        if train.crop:
            _, _, _, h, w = video.shape
            g = sample_generator(seed, step, 12)
            top = int(torch.randint(0, h - train.crop + 1, (), generator=g)) // 16 * 16
            left = int(torch.randint(0, w - train.crop + 1, (), generator=g)) // 16 * 16
            video = video[..., top : top + train.crop, left : left + train.crop]
        posterior = self.model.encode(video)
        mean, logvar = posterior.mean, posterior.logvar
        eps = torch.stack(
            [torch.randn(mean.shape[1:], generator=sample_generator(seed, int(i), 13)) for i in batch["index"]]
        ).to(mean)
        z = mean + torch.exp(0.5 * logvar) * eps
        recon = self.model.decode(z)
        with torch.autocast(video.device.type, enabled=False):  # SSIM's divisions overflow in bf16
            loss, parts = vae_loss(recon.float(), video.float(), mean.float(), logvar.float(),
                                   kl_weight=train.kl_weight, ssim_weight=train.ssim_weight,
                                   l1_weight=train.l1_weight, mse_weight=train.mse_weight)
        return loss, parts


class DiTStage(Stage):
    """Transformer: rectified-flow velocity on latents, random known frames, caption dropout."""

    def __init__(self, run: RunConfig, device: torch.device):
        from kinema.models.dit import DiffusionTransformer
        from kinema.models.text import check_text_width, load_text_encoder
        from kinema.models.vae import VideoAutoencoder

        self.run = run
        self.device = device
        if run.train.known_frames:
            from kinema.conditioning import random_known_mask

            try:
                random_known_mask(1, 5, None, run.train.known_frames)
            except InputError as exc:
                raise ConfigError(f"train.known_frames: {exc}") from None
        self.model = DiffusionTransformer(run.model.dit)
        self.vae = None
        if run.data.source != "cache":
            if not run.train.init_from:
                raise ConfigError("train.init_from: the transformer stage needs a checkpoint with a trained autoencoder")
            self.vae = VideoAutoencoder(run.model.vae).to(device).eval().requires_grad_(False)
            self.vae.load_state_dict(load_state(run.train.init_from, "vae"))
        self.text = load_text_encoder(run.model.text)
        check_text_width(self.text, run.model.dit.text_dim)
        if run.train.init_from and (resolve(run.train.init_from) / "dit.safetensors").is_file():
            state = load_state(run.train.init_from, "dit")
            self.model.load_state_dict(widen_inputs(state, load_config(run.train.init_from), run.model))
        self.text_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def encode_text(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = sorted({c for c in captions if c not in self.text_cache})
        if missing:
            states, mask = self.text.encode(missing)
            for caption, s, m in zip(missing, states, mask, strict=True):
                if len(self.text_cache) < 200_000:
                    self.text_cache[caption] = (s.cpu(), m.cpu())
                else:
                    return self.text.encode(captions)
        states = torch.stack([self.text_cache[c][0] for c in captions]).to(self.device)
        mask = torch.stack([self.text_cache[c][1] for c in captions]).to(self.device)
        return states, mask

    def loss(self, batch: dict, step: int, seed: int) -> tuple[torch.Tensor, dict]:
        from kinema.conditioning import random_known_mask
        from kinema.flow import apply_shift, flow_loss, sample_timesteps, shift_for_tokens

        if "latent" in batch:
            x0 = batch["latent"].to(self.device)
        else:
            with torch.no_grad():
                x0 = self.vae.encode_latent(batch["video"].to(self.device))
        b, _, t, h, w = x0.shape
        indices = [int(i) for i in batch["index"]]
        gens = [sample_generator(seed, i, 21) for i in indices]
        captions = [
            "" if torch.rand((), generator=g) < self.run.train.caption_dropout else c
            for g, c in zip(gens, batch["caption"], strict=True)
        ]
        states, text_mask = self.encode_text(captions)
        probs = self.run.train.known_frames or None
        known = torch.cat([random_known_mask(1, t, g, probs) for g in gens]).to(x0)  # (B, 1, T, 1, 1)
        known = known.expand(b, 1, t, h, w)
        times = torch.cat([sample_timesteps(1, generator=g) for g in gens]).to(x0)
        patch = self.run.model.dit.patch_size
        tokens = (t // patch[0]) * (h // patch[1]) * (w // patch[2])
        times = apply_shift(times, self.run.train.time_shift or shift_for_tokens(tokens))
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in gens]).to(x0)
        tb = times.view(b, 1, 1, 1, 1)
        x_t = (1 - tb) * x0 + tb * noise
        x_t = torch.where(known > 0, x0, x_t)
        velocity = self.model(x_t, times, states, text_mask, x0 * known, known)
        per_sample = torch.stack(
            [flow_loss(velocity[i : i + 1].float(), noise[i : i + 1], x0[i : i + 1], 1 - known[i : i + 1]) for i in range(b)]
        )
        return per_sample.mean(), {"flow": float(per_sample.detach().mean())}


TEXT_INPUTS = ("text_proj.0.weight", "pooled_embed.0.weight", "layout.weight")  # the layers that read text states


def _with_zero_columns(weight: torch.Tensor, extra: int) -> torch.Tensor:
    """`weight` with `extra` zero input columns appended: a layer that ignores the inputs added last."""
    return torch.cat([weight, weight.new_zeros(weight.shape[0], extra)], 1)


def widen_inputs(state: dict[str, torch.Tensor], old: ModelConfig, new: ModelConfig) -> dict:
    """A transformer trained with config `old`, made to read the inputs `new` adds to them: text layers
    appended to `old`'s (text.layers), the frame coordinates (dit.position_channels, dit.time_channel) and the layout prior
    (dit.layout_prior).

    The weights for the added inputs start at zero, so the widened model computes exactly what the old
    one did until training teaches it to use them. Any other change is left to load_state_dict to refuse.
    """
    widened = dict(state)
    old_layers, new_layers = tuple(old.text.layers), tuple(new.text.layers)
    if old_layers != new_layers:
        if new_layers[: len(old_layers)] != old_layers:
            raise ConfigError(f"text.layers {list(new_layers)} cannot start from a transformer trained on "
                              f"{list(old_layers)}: list the old layers first, e.g. "
                              f"{list(old_layers) + [i for i in new_layers if i not in old_layers]}")
        for key in TEXT_INPUTS:
            if key in state:
                extra = state[key].shape[1] // len(old_layers) * (len(new_layers) - len(old_layers))
                widened[key] = _with_zero_columns(state[key], extra)
    if new.dit.position_channels and not old.dit.position_channels:
        # columns in (channel, pt, ph, pw) order: new channels go last
        widened["patch_embed.weight"] = _with_zero_columns(state["patch_embed.weight"], 2 * math.prod(new.dit.patch_size))
    elif old.dit.position_channels and not new.dit.position_channels:
        raise ConfigError("dit.position_channels: init_from's transformer reads frame coordinates; keep it true")
    if new.dit.time_channel and not old.dit.time_channel:
        # the time channel follows x and y
        widened["patch_embed.weight"] = _with_zero_columns(widened["patch_embed.weight"], math.prod(new.dit.patch_size))
    elif old.dit.time_channel and not new.dit.time_channel:
        raise ConfigError("dit.time_channel: init_from's transformer reads each frame's place in time; keep it true")
    if new.dit.layout_prior and not old.dit.layout_prior:
        outputs = new.dit.layout_prior**3 * new.dit.latent_channels
        widened["layout.weight"] = torch.zeros(outputs, new.dit.text_dim)
        widened["layout.bias"] = torch.zeros(outputs)
    elif old.dit.layout_prior != new.dit.layout_prior:
        raise ConfigError(f"dit.layout_prior: init_from's transformer has {old.dit.layout_prior}; keep it")
    return widened


def param_groups(model: torch.nn.Module, lr: float, scales: dict[str, float]) -> list[dict]:
    """Trainable parameters grouped by learning rate: `lr` times the scale of the first prefix in `scales`
    that a parameter's name (without a DDP `module.` wrapper) starts with, else `lr`."""
    groups: dict[float, list] = {}
    used = set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        name = name.removeprefix("module.")
        prefix = next((p for p in scales if name.startswith(p)), None)
        used.add(prefix)
        groups.setdefault(lr * scales[prefix] if prefix else lr, []).append(param)
    unknown = set(scales) - used
    if unknown:
        raise ConfigError(f"train.lr_scales: no parameter name starts with {', '.join(sorted(unknown))}")
    return [{"params": params, "lr": rate} for rate, params in groups.items()]


def _lr_lambda(warmup: int, total: int = 0, decay: int = 0, floor: float = 0.0):
    """Warm up linearly, hold, then (if ``decay``) fall linearly to ``floor`` over the last ``decay`` steps.

    Warm-up, stable, decay: a run can be resumed with a new ``steps`` and ``decay_steps`` to cool down a
    constant-rate run, because the scheduler's saved state is only its step count.
    """

    def factor(step: int) -> float:
        scale = min(1.0, (step + 1) / max(1, warmup))
        if decay > 0 and total > 0:
            left = (total - step) / decay
            scale *= floor + (1.0 - floor) * min(1.0, max(0.0, left))
        return scale

    return factor


def _checkpoint_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("step-*") if p.is_dir())


def _card(run: RunConfig, step: int, loss: float, seconds: float, device: torch.device, world_size: int) -> str:
    return (
        f"# {run.model.name}\n\n"
        f"- stage: {run.train.stage}\n- steps: {step}\n- batch size (global): {run.train.batch_size * world_size}\n"
        f"- data: {run.data.source} {run.data.width}x{run.data.height}, {run.data.num_frames} frames at {run.data.fps} fps\n"
        f"- final loss (EMA of logged): {loss:.4f}\n- wall time: {seconds / 60:.1f} min\n"
        f"- hardware: {world_size} x {device.type} ({os.cpu_count()} CPU cores visible)\n"
    )


def adopt_autoencoder(run: RunConfig) -> None:
    """The transformer stage, and a decoder-only autoencoder stage, use init_from's autoencoder config
    exactly as trained, latent scale included."""
    frozen = run.train.stage == "vae" and run.train.freeze_encoder
    if (run.train.stage == "dit" or frozen) and run.train.init_from:
        run.model.vae = load_config(run.train.init_from).vae


def train(run: RunConfig, resume: bool = False, show_progress: bool = True) -> Path:
    """Run (or resume) the training a RunConfig describes; returns the last checkpoint folder."""
    adopt_autoencoder(run)
    env = distributed.setup()
    try:
        return _train(run, env, resume, show_progress)
    finally:
        distributed.teardown()


def _train(run: RunConfig, env: distributed.Dist, resume: bool, show_progress: bool) -> Path:
    cfg = run.train
    if cfg.stage not in ("vae", "dit"):
        raise ConfigError(f"train.stage {cfg.stage!r}: choose vae or dit")
    out = Path(cfg.out_dir)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.toml").write_text(dump_toml(to_dict(run)))
    torch.manual_seed(cfg.seed)
    stage = VAEStage(run) if cfg.stage == "vae" else DiTStage(run, env.device)
    model = stage.model.to(env.device)
    ema = copy.deepcopy(model).requires_grad_(False)
    if env.is_main:
        params = sum(p.numel() for p in model.parameters())
        tqdm.write(f"kinema train: {cfg.stage} stage, {params / 1e6:.2f} M parameters, {env.world_size} process(es)")
    if cfg.compile:
        # In place, after the EMA copy: the module keeps its parameter names, so checkpoints and
        # --resume are the same with or without compiling.
        model.compile()
    model = distributed.wrap(model, env, cfg.parallel)
    if env.enabled and cfg.parallel == "fsdp":
        distributed.wrap(ema, env, "fsdp")
    stage.model = model
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.lr, cfg.lr_scales), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.warmup_steps, cfg.steps, cfg.decay_steps, cfg.min_lr_ratio))

    start_step = 0
    if resume:
        start_step = _load_state(out, model, ema, optimizer, scheduler, env)
        if env.is_main:
            tqdm.write(f"kinema train: resumed at step {start_step} from {out}")

    dataset = build_dataset(run.data)
    loader = DataLoader(
        dataset,
        batch_sampler=StepBatches(start_step, cfg.steps, cfg.batch_size, env, dataset),
        num_workers=run.data.num_workers,
        collate_fn=collate,
        persistent_workers=False,
        prefetch_factor=4 if run.data.num_workers else None,
    )
    metrics = (out / "metrics.jsonl").open("a") if env.is_main else None
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not (env.is_main and show_progress), unit="step")
    smoothed, started, last = math.nan, time.time(), None
    step = start_step
    tick = time.time()
    for step, batch in enumerate(loader, start=start_step):
        model.train()
        with _autocast(cfg.precision, env.device):
            loss, parts = stage.loss(batch, step, cfg.seed)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        _update_ema(ema, model, cfg.ema_decay if step >= cfg.warmup_steps else 0.0)
        loss_value = float(distributed.all_reduce_mean(loss.detach().float(), env))
        smoothed = loss_value if math.isnan(smoothed) else 0.98 * smoothed + 0.02 * loss_value
        if env.is_main and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps):
            elapsed = time.time() - tick
            rate = cfg.log_every * cfg.batch_size * env.world_size / max(elapsed, 1e-9)
            tick = time.time()
            record = {"step": step + 1, "loss": loss_value, "smoothed": smoothed, "lr": scheduler.get_last_lr()[0],
                      "grad_norm": float(grad_norm), "samples_per_s": rate, **parts}
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            bar.set_postfix(loss=f"{smoothed:.4f}", samples_s=f"{rate:.1f}")
        bar.update(1)
        out_of_time = _out_of_time(cfg.max_minutes, started, env)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps or out_of_time:
            last = _save(run, out, step + 1, model, ema, optimizer, scheduler, env, stage, smoothed, time.time() - started)
        if cfg.sample_every and cfg.stage == "dit" and (step + 1) % cfg.sample_every == 0 and env.is_main:
            _write_sample(run, stage, ema, out / "samples" / f"step-{step + 1:07d}.mp4")
        if out_of_time:
            if env.is_main:
                tqdm.write(f"kinema train: stopping at step {step + 1}: train.max_minutes = {cfg.max_minutes} reached")
            break
    bar.close()
    if metrics:
        metrics.close()
    if last is None:
        dirs = _checkpoint_dirs(out)
        last = dirs[-1] if dirs else out
    return last


def _write_sample(run: RunConfig, stage: Stage, ema: nn.Module, path: Path) -> None:
    """A short clip from the EMA weights, to watch a run learn (unsigned: it is a training artefact)."""
    from kinema.io import write_video
    from kinema.models.vae import VideoAutoencoder
    from kinema.pipeline import GenerationRequest, Pipeline

    vae = getattr(stage, "vae", None)
    if vae is None:
        vae = VideoAutoencoder(run.model.vae).eval()
        vae.load_state_dict(load_state(run.train.init_from, "vae"))
    dit = copy.deepcopy(ema) if not any(hasattr(p, "to_local") for p in ema.parameters()) else None
    if dit is None:  # FSDP-sharded EMA: sampling would need every rank; skip rather than gather here
        return
    pipe = Pipeline(run.model, dit, vae, stage.text)
    result = pipe.generate(GenerationRequest(run.train.sample_prompt, seconds=2.0, check_safety=False))
    write_video(path, result.frames, result.fps)


def _out_of_time(max_minutes: float, started: float, env: distributed.Dist) -> bool:
    """Whether the wall-time budget is spent (rank 0 decides, so every rank stops at the same step)."""
    if max_minutes <= 0:
        return False
    flag = torch.tensor([float(time.time() - started > 60 * max_minutes)])
    if env.enabled:
        torch.distributed.broadcast(flag, 0)
    return bool(flag.item())


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
        target = ema_p.to_local() if hasattr(ema_p, "to_local") else ema_p
        source = p.to_local() if hasattr(p, "to_local") else p
        target.lerp_(source.detach(), 1.0 - decay)


def _full_states(model, ema, optimizer):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state, optim_state = get_state_dict(model, optimizer, options=options)
    ema_state = get_model_state_dict(ema, options=options)
    return model_state, optim_state, ema_state


def _save(run, out, step, model, ema, optimizer, scheduler, env, stage, loss, seconds) -> Path:
    model_state, optim_state, ema_state = _full_states(model, ema, optimizer)
    folder = out / f"step-{step:07d}"
    if env.is_main:
        vae_state = ema_state if run.train.stage == "vae" else None
        dit_state = ema_state if run.train.stage == "dit" else None
        if run.train.stage == "dit" and run.train.init_from:
            vae_state = load_state(run.train.init_from, "vae")
        refit = run.train.stage == "vae" and not run.train.freeze_encoder  # frozen: latents must not move
        if refit and getattr(stage, "last_video", None) is not None:
            _fit_latent_scale(run, ema_state, stage.last_video)
        card = _card(run, step, loss, seconds, env.device, env.world_size)
        tmp_state = out / f".{STATE_FILE}.tmp"
        try:
            # The training state is written, then copied into the checkpoint: room for both, and the weights.
            need = state_bytes(model_state, optim_state, ema_state)
            with disk_writes(out, 2 * need + state_bytes(dit_state, vae_state)):
                torch.save({"step": step, "model": model_state, "optimizer": optim_state, "ema": ema_state,
                            "scheduler": scheduler.state_dict()}, tmp_state)
            save_checkpoint(folder, run.model, dit_state, vae_state, card, extra_files={STATE_FILE: tmp_state})
        except InputError as exc:  # a full disk: stop with the last good checkpoint named, nothing half-written
            saved = _checkpoint_dirs(out)
            last = f"the last saved is {saved[-1].name}" if saved else "none was saved before"
            raise InputError(f"checkpoint {folder.name} not saved: {exc}; {last} (once there is room, run "
                             "again with --resume)") from None
        finally:
            tmp_state.unlink(missing_ok=True)
        (out / ".latest.tmp").write_text(folder.name)
        os.replace(out / ".latest.tmp", out / "latest")
        for old in _checkpoint_dirs(out)[: -max(1, run.train.keep_last)]:
            shutil.rmtree(old, ignore_errors=True)
    if env.enabled:
        torch.distributed.barrier()
    return folder


@torch.no_grad()
def _fit_latent_scale(run: RunConfig, vae_state: dict, video: torch.Tensor) -> None:
    """Set the saved autoencoder's latent shift and scale so the transformer sees unit-scale latents."""
    from kinema.models.vae import VideoAutoencoder, fit_latent_stats

    vae = VideoAutoencoder(run.model.vae).eval()
    vae.load_state_dict(vae_state)
    run.model.vae.latent_shift, run.model.vae.latent_scale = fit_latent_stats(vae, [video.float()])


def _load_state(out, model, ema, optimizer, scheduler, env) -> int:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_state_dict

    pointer = out / "latest"
    if not pointer.is_file():
        raise ConfigError(f"{out}: nothing to resume (no checkpoint written yet); start without --resume")
    state = torch.load(out / pointer.read_text().strip() / STATE_FILE, map_location="cpu", weights_only=False)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=env.enabled)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"], options=options)
    set_model_state_dict(ema, state["ema"], options=options)
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"])
