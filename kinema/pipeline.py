"""`Pipeline`: the one object every caller (CLI, server, evaluation, benchmarks) uses to make a video.

A request names what is known (nothing, an image, a clip to extend, frames to keep) and what to make;
the pipeline turns that into known latent frames and a mask, samples window by window with the
transformer, decodes with the autoencoder, and, when asked to write a file, watermarks and signs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kinema.checkpoint import (
    CheckpointInfo,
    checkpoint_hash,
    default_checkpoint,
    load_config,
    load_state,
    resolve,
)
from kinema.config import ModelConfig
from kinema.errors import InputError, file_error
from kinema.io import VIDEO_SUFFIXES, Video, frames_to_tensor, prepare_output, tensor_to_frames
from kinema.plan import LatentPlan, plan_request

TASKS = ("text", "image", "extend", "interpolate", "fill", "connect", "edit", "loop", "storyboard")
MAX_PROMPT_CHARS = 2000
MAX_FPS = 60.0
MAX_GUIDANCE = 30.0
# seed * 1009 + window stays a valid 64-bit generator seed, and the seed survives a round trip through JSON.
MAX_SEED = 2**53 - 1
# The C2PA action each task records.
OPERATIONS = {"text": "generate", "loop": "generate", "storyboard": "generate", "image": "image", "extend": "extend",
              "edit": "edit", "interpolate": "interpolate", "fill": "interpolate", "connect": "connect"}


@dataclass
class Shot:
    """One timed prompt of a storyboard."""

    start: float
    end: float
    prompt: str


@dataclass
class GenerationRequest:
    """What to make. Only `prompt` is required for text to video; the rest have sensible defaults."""

    prompt: str = ""
    # What to steer away from: it takes the empty prompt's place in classifier-free guidance, so it acts
    # only when guidance_scale is above 1 (the default).
    negative_prompt: str = ""
    task: str = "text"
    seconds: float = 2.0
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    seed: int = 0
    steps: int | None = None
    guidance_scale: float | None = None
    image: np.ndarray | None = None  # uint8 (H, W, 3)
    image_at: str = "start"
    video: Video | None = None  # extend / interpolate / fill / edit / connect (first clip)
    video_b: Video | None = None  # connect (second clip)
    backward: bool = False
    factor: int = 2
    fill_frames: tuple[int, int] | None = None  # inclusive frame range to regenerate
    strength: float = 0.6
    fit: str = "crop"
    shots: list[Shot] = field(default_factory=list)
    check_safety: bool = True


@dataclass
class GenerationResult:
    """Frames made, with what it took to make them."""

    frames: np.ndarray  # uint8 (T, H, W, 3)
    fps: float
    seed: int
    timings: dict[str, float]
    request: GenerationRequest
    color_drift: float | None = None
    path: Path | None = None
    provenance: dict | None = None
    precision: str = "fp32"

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps

    def summary(self) -> dict:
        """Machine-readable description for `--json` and the server."""
        height, width = self.frames.shape[1:3]
        out = {
            "path": str(self.path) if self.path else None,
            "task": self.request.task,
            "seconds": round(self.seconds, 3),
            "frames": int(len(self.frames)),
            "fps": self.fps,
            "size": f"{width}x{height}",
            "seed": self.seed,
            "precision": self.precision,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
        if self.color_drift is not None:
            out["color_drift"] = round(self.color_drift, 4)
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out


ProgressFn = Callable[[dict], None]
CancelFn = Callable[[], bool]


PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device | str = "cpu", cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether bf16 maths runs in hardware here: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX.

    Elsewhere bf16 is emulated in fp32 and autocast only adds conversions (measured slower than fp32 on a
    Xeon without AVX512-BF16, faster on an AMD EPYC with it). Reads /proc/cpuinfo, so on CPUs it answers
    yes only on Linux."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = cpuinfo.read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """'auto' -> 'bf16' where the hardware runs bf16 natively, else 'fp32'; 'fp32' and 'bf16' as given."""
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def check_numbers(request: GenerationRequest) -> None:
    """Raise InputError for a frame rate, step count, guidance scale or seed that no generation can use.

    None means the checkpoint's default; 0 is refused, not read as the default. NaN fails every range check.
    Durations, strengths and factors are checked where each task plans its frames (kinema.plan)."""
    if request.fps is not None and not 0 < request.fps <= MAX_FPS:
        raise InputError(f"fps {request.fps}: choose a frame rate above 0 and up to {MAX_FPS:g}")
    if request.steps is not None and not 1 <= request.steps <= 1000:
        raise InputError(f"steps {request.steps}: choose from 1 to 1000")
    guidance = request.guidance_scale
    if guidance is not None and not 1.0 <= guidance <= MAX_GUIDANCE:
        raise InputError(f"guidance {guidance}: choose a scale from 1 (no guidance) to {MAX_GUIDANCE:g}")
    if not 0 <= request.seed <= MAX_SEED:
        raise InputError(f"seed {request.seed}: choose an integer from 0 to {MAX_SEED}")


def color_drift(frames: np.ndarray, fps: float) -> float:
    """Mean absolute RGB difference (0-1) between the first and the last second's average colours."""
    n = max(1, round(fps))
    first = frames[:n].reshape(-1, 3).mean(0)
    last = frames[-n:].reshape(-1, 3).mean(0)
    return float(np.abs(first - last).mean() / 255.0)


class Pipeline:
    """A loaded checkpoint (transformer, autoencoder, text encoder) ready to generate."""

    def __init__(self, cfg: ModelConfig, dit: torch.nn.Module, vae: torch.nn.Module, text_encoder,
                 info: CheckpointInfo | None = None, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.dit = dit.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.text_encoder = text_encoder
        self.info = info or CheckpointInfo(id=cfg.name, sha256="", path="")
        self.device = torch.device(device)
        self.autocast = False  # bf16 autocast for the transformer; see set_precision
        self._text_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._preview: torch.Tensor | None = None

    def compile(self) -> Pipeline:
        """Compile the transformer's forward with torch.compile (in place; weights untouched).

        Each new latent shape compiles once, about a minute on 2 CPU cores (less from a warm cache), and
        every denoising step after it runs faster: worth it for a server or a long video, not for one
        short clip. Needs a C++ compiler on CPU.
        """
        if self.device.type == "cpu" and not (os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")):
            raise InputError("compiling on CPU needs a C++ compiler (g++ or clang++, or $CXX): install one, "
                             "or run without --compile")
        self.dit.compile(dynamic=False)
        return self

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast else "fp32"

    def set_precision(self, precision: str = "auto") -> Pipeline:
        """Run the transformer in fp32 or under bf16 autocast; 'auto' picks bf16 where it is native.

        The autoencoder, the text encoder and the sampler's arithmetic stay fp32. On the shipped model bf16
        kept the evaluation score (0.877 against 0.873) at 13% less time per case on a CPU with AVX512-BF16.
        """
        self.autocast = resolve_precision(precision, self.device) == "bf16"
        return self

    @classmethod
    def from_checkpoint(cls, folder: str | Path | None = None, device: str = "cpu", text_encoder=None) -> Pipeline:
        """Load a checkpoint folder (default: the shipped model) with no network access.

        text_encoder: one to use instead of the checkpoint's (e.g. `SavedTextStates`); it must match the
        checkpoint's text width."""
        from kinema.models.dit import DiffusionTransformer
        from kinema.models.text import check_text_width, load_text_encoder
        from kinema.models.vae import VideoAutoencoder

        folder = resolve(folder) if folder else default_checkpoint()
        cfg = load_config(folder)
        text = text_encoder if text_encoder is not None else load_text_encoder(cfg.text)
        check_text_width(text, cfg.dit.text_dim)
        dit = DiffusionTransformer(cfg.dit)
        dit.load_state_dict(load_state(folder, "dit"))
        vae = VideoAutoencoder(cfg.vae)
        vae.load_state_dict(load_state(folder, "vae"))
        info = CheckpointInfo(id=f"{cfg.name}@{folder.name}", sha256=checkpoint_hash(folder), path=str(folder))
        return cls(cfg, dit.to(device), vae.to(device), text, info, device)

    # ---- limits -------------------------------------------------------------------------------
    def resolve_size(self, width: int | None, height: int | None) -> tuple[int, int]:
        """Default or validated (width, height): multiples of 16 inside the checkpoint's range."""
        s = self.cfg.sampling
        width = s.width if width is None else width
        height = s.height if height is None else height
        for name, value in (("width", width), ("height", height)):
            if value % 16 or not s.min_side <= value <= s.max_side:
                examples = [f"{s.width}x{s.height}"] + [
                    f"{w}x{h}" for w, h in ((160, 96), (96, 160)) if s.min_side <= min(w, h) and max(w, h) <= s.max_side
                ]
                raise InputError(
                    f"{name} {value}: this checkpoint makes sizes whose sides are multiples of 16 from "
                    f"{s.min_side} to {s.max_side} (e.g. {', '.join(examples)})"
                )
        return width, height

    # ---- building blocks ---------------------------------------------------------------------
    def encode_text(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states (1, L, D) and mask (1, L) for a prompt, cached."""
        if prompt not in self._text_cache:
            states, mask = self.text_encoder.encode([prompt])
            if len(self._text_cache) > 256:
                self._text_cache.clear()
            self._text_cache[prompt] = (states.to(self.device), mask.to(self.device))
        return self._text_cache[prompt]

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (T, H, W, 3) with T = 1+4k -> normalised latent (C, 1+k, H/8, W/8)."""
        video = frames_to_tensor(frames)[None].to(self.device)
        return self.vae.encode_latent(video)[0]

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Normalised latent (C, t, h, w) -> uint8 (1+4(t-1), H, W, 3), decoded in chunks."""
        video = self.vae.decode_latent(latents[None].to(self.device), chunk_frames=4)
        return tensor_to_frames(video[0])

    @torch.no_grad()
    def preview_rgb(self, latents: torch.Tensor) -> np.ndarray:
        """Cheap latent -> RGB preview (a linear map fitted to the autoencoder), uint8 (t, h, w, 3)."""
        if self._preview is None:
            self._preview = self._fit_preview()
        c = latents.shape[0]
        flat = latents.float().permute(1, 2, 3, 0).reshape(-1, c)
        rgb = torch.cat([flat, torch.ones(len(flat), 1)], 1) @ self._preview
        rgb = rgb.reshape(*latents.shape[1:], 3).clamp(-1, 1)
        return ((rgb + 1) * 127.5).round().to(torch.uint8).numpy()

    def _fit_preview(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        colours = torch.rand(64, 3, generator=generator) * 2 - 1
        patches = colours.view(64, 3, 1, 1, 1).expand(64, 3, 1, 16, 16)
        latents = self.vae.encode_latent(patches.to(self.device)).float().mean(dim=(2, 3, 4))  # (64, C)
        design = torch.cat([latents, torch.ones(64, 1)], 1)
        return torch.linalg.lstsq(design, colours).solution  # (C + 1, 3)

    # ---- sampling ----------------------------------------------------------------------------
    def _sample_window(self, noise, known_latent, known_mask, prompt, negative, steps, guidance, start_time,
                       init_latent, on_step, cancel):
        from kinema.flow import euler_sample, get_schedule, shift_for_tokens

        cond = self.encode_text(prompt)
        uncond = self.encode_text(negative)
        _, t, h, w = noise.shape
        patch = self.cfg.dit.patch_size
        tokens = (t // patch[0]) * (h // patch[1]) * (w // patch[2])
        schedule = get_schedule(steps, self.cfg.sampling.shift or shift_for_tokens(tokens))
        x = noise[None]
        if start_time < 1.0:  # edit: start part-way, from the noised input
            schedule = torch.cat([torch.tensor([start_time]), schedule[schedule < start_time]])
            x = (1 - start_time) * init_latent[None] + start_time * x
        kl, km = known_latent[None], known_mask[None].expand(1, 1, t, h, w)

        stash: list[torch.Tensor] = []

        def model_fn(x_t, t_now, conditional: bool):
            # With guidance, one batch of two (conditional, unconditional) is cheaper than two batches of one.
            if not conditional:
                return stash.pop()
            batch = 2 if guidance != 1.0 else 1
            states = torch.cat([cond[0], uncond[0]])[:batch]
            mask = torch.cat([cond[1], uncond[1]])[:batch]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                v = self.dit(x_t.expand(batch, -1, -1, -1, -1), t_now.expand(batch).to(x_t), states, mask,
                             (kl * km).expand(batch, -1, -1, -1, -1), km.expand(batch, -1, -1, -1, -1)).float()
            if batch == 2:
                stash.append(v[1:])
            return v[:1]

        def preview(step, x0_estimate):
            on_step(step, len(schedule) - 1, x0_estimate[0])

        return euler_sample(model_fn, x, schedule, guidance, progress=None, cancel=cancel,
                            known_latent=kl, known_mask=km, preview=preview)[0]

    @torch.no_grad()
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> GenerationResult:
        """Run a request: plan known latents, sample window by window, decode, restore known frames."""
        from kinema.flow import noise_like

        timings: dict[str, float] = {}
        started = time.perf_counter()
        if request.check_safety:
            self._check_prompts(request)
        if request.task not in TASKS:
            raise InputError(f"unknown task {request.task!r}; choose one of {', '.join(TASKS)}")
        width, height = self.resolve_size(request.width, request.height)
        check_numbers(request)
        s = self.cfg.sampling
        fps = float(request.fps if request.fps is not None else s.fps)
        steps = int(request.steps if request.steps is not None else s.steps)
        guidance = float(request.guidance_scale if request.guidance_scale is not None else s.guidance_scale)
        plan: LatentPlan = plan_request(self, request, width, height, fps)
        timings["prepare"] = time.perf_counter() - started

        latents = plan.known_latent.clone()
        done = plan.known.clone()  # latent frames fixed so far: (T,) bool
        windows = plan.windows
        tick = time.perf_counter()
        for index, (start, end, prompt, start_time) in enumerate(windows):
            if index in plan.copies:  # a loop's bridge ends on copies of the clip's opening latents
                first, count = plan.copies[index]
                latents[:, len(latents[0]) - count :] = latents[:, first : first + count]
                done[len(done) - count :] = True
            noise = noise_like((latents.shape[0], end - start, *latents.shape[2:]), request.seed * 1009 + index)
            known_mask = done[start:end].float().view(1, -1, 1, 1).to(latents)
            window_known = latents[:, start:end] * known_mask

            def on_step(step, total, x0_estimate, index=index):
                if progress is None:
                    return
                fraction = (index + step / total) / len(windows)
                progress({"stage": "denoise", "window": index + 1, "windows": len(windows), "step": step,
                          "steps": total, "fraction": fraction, "preview": lambda x=x0_estimate: self.preview_rgb(x)})

            init = plan.init_latent[:, start:end] if plan.init_latent is not None else None
            latents[:, start:end] = self._sample_window(
                noise, window_known, known_mask[0], prompt, request.negative_prompt, steps, guidance, start_time,
                init, on_step, cancel)
            done[start:end] = True
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the kernels queued above have run: the time is theirs
        timings["denoise"] = time.perf_counter() - tick

        tick = time.perf_counter()
        frames = self.decode_latents(latents)
        timings["decode"] = time.perf_counter() - tick
        frames = plan.finish(frames)
        timings["total"] = time.perf_counter() - started
        drift = color_drift(frames, fps) if len(frames) >= 2 * fps else None
        if progress:
            progress({"stage": "done", "fraction": 1.0})
        return GenerationResult(frames, plan.fps, request.seed, timings, request, drift, precision=self.precision)

    def _check_prompts(self, request: GenerationRequest) -> None:
        prompts = [request.prompt] + [shot.prompt for shot in request.shots]
        for label, text in [("prompt", p) for p in prompts] + [("negative prompt", request.negative_prompt)]:
            if len(text) > MAX_PROMPT_CHARS:
                raise InputError(f"{label} is {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
        from kinema import safety

        for prompt in prompts:
            if prompt.strip():
                safety.enforce(prompt)

    def generate_to_file(self, request: GenerationRequest, path: str | Path, progress: ProgressFn | None = None,
                         cancel: CancelFn | None = None, sign: bool = True, watermark: bool = True) -> GenerationResult:
        """Generate, then watermark, write the MP4 and sign it with a C2PA manifest.

        The file appears under `path` only when complete (signed too, when signing), replacing any file
        there: an error, a full disk or an interrupt leaves the previous file (or none), never a partial one."""
        from kinema import provenance

        path = prepare_output(path, VIDEO_SUFFIXES)  # fail before the generation, not after it
        result = self.generate(request, progress, cancel)
        ingredients = [v for v in (request.video, request.video_b) if v is not None]
        info = provenance.ProvenanceInfo(
            operation=OPERATIONS[request.task], checkpoint_id=self.info.id, checkpoint_sha256=self.info.sha256,
            inputs=[v.path for v in ingredients if v.path], seed=request.seed,
        )
        # Write and sign in a private folder beside the output, under the output's own name (the manifest
        # records it), then move the finished file into place in one step.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # again: a server may remove a job's folder meanwhile
            staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        except OSError as exc:
            raise file_error(exc, path) from None
        staged = staging / path.name
        try:
            status = provenance.finalize_video(result.frames, result.fps, staged, info, watermark=watermark, sign=sign)
            os.replace(staged, path)
        except InputError as exc:  # its message names the staged file; the user knows only `path`
            raise InputError(str(exc).replace(str(staged), str(path))) from None
        except OSError as exc:
            raise file_error(exc, path) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.path = path
        result.provenance = {"watermarked": status.watermarked, "watermark_id": status.payload_id,
                             "signed": status.signed, "message": status.message}
        return result
