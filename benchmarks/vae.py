"""Video autoencoder: decode speed, memory of long decodes, and reconstruction quality on world clips.

Run: `python -m benchmarks.vae [--checkpoint DIR] [--clips 64]`.
(a) decode time of a 17-frame 128x128 clip, beside a single Conv3d measured in the same run;
(b) peak memory decoding 481 frames (60 s at 8 fps) against 17 frames, each in a fresh subprocess;
(c) with a checkpoint: PSNR and SSIM on held-out world clips (seeds from 10_000_000) beside a bilinear
    8x down-and-up baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from kinema.config import VAEConfig
from kinema.models.losses import psnr, ssim
from kinema.models.vae import VideoAutoencoder

HELDOUT_SEED = 10_000_000
TARGET_DECODE_S, TARGET_MEMORY_RATIO = 0.5, 1.5


def machine() -> str:
    """Short description of where this ran."""
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def median_seconds(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of `fn` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_model(checkpoint: str | None) -> VideoAutoencoder:
    """The checkpoint's autoencoder, or a freshly initialised default one (same speed and memory)."""
    if checkpoint is None:
        return VideoAutoencoder(VAEConfig()).eval()
    from kinema.checkpoint import load_config, load_state

    model = VideoAutoencoder(load_config(checkpoint).vae).eval()
    model.load_state_dict(load_state(checkpoint, "vae"))
    return model


@torch.no_grad()
def decode_speed(model: VideoAutoencoder) -> None:
    """(a) Seconds to decode a 17x128x128 clip, fp32 and bf16 + channels_last_3d."""
    z = torch.randn(1, model.cfg.latent_channels, 5, 16, 16)
    reference = torch.nn.Conv3d(32, 32, 3, padding=1)
    activation = torch.randn(1, 32, 17, 64, 64)
    conv_s = median_seconds(lambda: reference(activation))
    fp32_s = median_seconds(lambda: model.decode_latent(z, chunk_frames=None))
    fast = VideoAutoencoder(model.cfg).eval().to(memory_format=torch.channels_last_3d)
    fast.load_state_dict(model.state_dict())
    z_cl = z.contiguous(memory_format=torch.channels_last_3d)

    def decode_bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fast.decode_latent(z_cl, chunk_frames=None)

    bf16_s = median_seconds(decode_bf16)
    print(f"(a) decode 17x128x128 on {machine()}")
    print(f"    reference: one Conv3d 32->32 3x3x3 over 17x64x64: {conv_s:.4f} s")
    for name, seconds in (("fp32", fp32_s), ("bf16 autocast + channels_last_3d", bf16_s)):
        flag = "ok" if seconds <= TARGET_DECODE_S else "ABOVE TARGET"
        print(f"    {name}: {seconds:.3f} s = {seconds / conv_s:.1f}x the reference conv  ({flag}, target "
              f"{TARGET_DECODE_S} s)")


def _peak_memory_child(latent_frames: int, keep_output: bool, checkpoint: str | None) -> None:
    """Run in a subprocess: decode once, print the rise in peak RSS (MiB) over the loaded model as JSON."""
    torch.set_num_threads(2)
    model = load_model(checkpoint)
    z = torch.randn(1, model.cfg.latent_channels, latent_frames, 16, 16)
    with torch.no_grad():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if keep_output:
            frames = model.decode_latent(z).shape[2]
        else:  # streaming to a file: each chunk is written and dropped
            frames = sum(piece.shape[2] for piece in model.iter_decode(model.denormalise(z)))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"frames": frames, "peak_mib": (after - before) / 1024}))


# glibc raises its mmap threshold as big blocks are freed, then serves them from a heap that fragments
# over many chunks; a fixed threshold hands each freed activation back, keeping long decodes flat.
ALLOCATORS = {"glibc default": {}, "MALLOC_MMAP_THRESHOLD_=1048576": {"MALLOC_MMAP_THRESHOLD_": "1048576"}}


def peak_memory(checkpoint: str | None) -> None:
    """(b) Peak extra memory decoding 481 frames against 17 frames at 128x128, chunked (4 latent frames)."""
    print("(b) peak memory above the loaded model, decoding at 128x128 in chunks of 4 latent frames")
    for allocator, env in ALLOCATORS.items():
        for keep_output in (False, True):
            peaks = {}
            for latent_frames in (5, 121):
                cmd = [sys.executable, "-m", "benchmarks.vae", "--_child", str(latent_frames)]
                cmd += ["--_keep"] if keep_output else []
                cmd += ["--checkpoint", checkpoint] if checkpoint else []
                out = subprocess.run(
                    cmd, capture_output=True, text=True, check=True, env={**os.environ, **env}
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                peaks[result["frames"]] = result["peak_mib"]
            ratio = peaks[481] / peaks[17]
            label = "whole video returned (481 frames fp32 = 90 MiB)" if keep_output else "chunks streamed"
            flag = "" if keep_output else ("  ok" if ratio <= TARGET_MEMORY_RATIO else "  ABOVE TARGET")
            print(f"    {allocator}, {label}: 17 frames {peaks[17]:.0f} MiB, 481 frames {peaks[481]:.0f} MiB, "
                  f"ratio {ratio:.2f}{flag}")


@torch.no_grad()
def reconstruction(model: VideoAutoencoder, clips: int, use_bf16: bool) -> None:
    """(c) PSNR / SSIM on held-out world clips 17x128x128, beside bilinear 8x down and up."""
    from kinema.io import frames_to_tensor
    from kinema.world import render_clip

    scores: dict[str, list[float]] = {"vae psnr": [], "vae ssim": [], "bilinear psnr": [], "bilinear ssim": []}
    start = time.perf_counter()
    for i in range(clips):
        clip = render_clip(HELDOUT_SEED + i, width=128, height=128, fps=8.0, num_frames=17)
        video = frames_to_tensor(clip.frames)[None]  # (1, 3, 17, 128, 128)
        with torch.autocast("cpu", dtype=torch.bfloat16) if use_bf16 else nullcontext():
            recon = model.decode_latent(model.encode_latent(video)).float()
        frames = video[0].transpose(0, 1)  # (17, 3, 128, 128)
        small = F.interpolate(frames, scale_factor=1 / 8, mode="bilinear", antialias=True, align_corners=False)
        baseline = F.interpolate(small, size=frames.shape[-2:], mode="bilinear", align_corners=False)
        baseline = baseline.clamp(-1, 1).transpose(0, 1)[None]
        scores["vae psnr"].append(psnr(recon, video).item())
        scores["vae ssim"].append(ssim(recon, video).item())
        scores["bilinear psnr"].append(psnr(baseline, video).item())
        scores["bilinear ssim"].append(ssim(baseline, video).item())
    seconds = time.perf_counter() - start
    print(f"(c) reconstruction of {clips} held-out world clips 17x128x128 (seeds {HELDOUT_SEED}+), "
          f"{'bf16' if use_bf16 else 'fp32'}, {seconds / clips:.2f} s/clip incl. render")
    for method in ("vae", "bilinear"):
        print(f"    {method:<9} PSNR {statistics.mean(scores[method + ' psnr']):.2f} dB  "
              f"SSIM {statistics.mean(scores[method + ' ssim']):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="folder with vae.safetensors and config.toml ([vae] table)")
    parser.add_argument("--clips", type=int, default=64, help="held-out world clips for (c)")
    parser.add_argument("--bf16", action="store_true", help="run (c) under bf16 autocast")
    parser.add_argument("--parts", default="abc", help="which of (a) speed, (b) memory, (c) quality to run")
    parser.add_argument("--_child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child is not None:
        _peak_memory_child(args._child, args._keep, args.checkpoint)
        return
    torch.set_num_threads(2)
    model = load_model(args.checkpoint)
    print(f"autoencoder: {model.num_params() / 1e6:.2f} M parameters, "
          f"{'checkpoint ' + args.checkpoint if args.checkpoint else 'untrained default config'}")
    if "a" in args.parts:
        decode_speed(model)
    if "b" in args.parts:
        peak_memory(args.checkpoint)
    if "c" in args.parts and args.checkpoint:
        reconstruction(model, args.clips, args.bf16)
    elif "c" in args.parts:
        print("(c) skipped: pass --checkpoint DIR for reconstruction quality on world clips")


if __name__ == "__main__":
    main()
