"""Frames ⇄ tensors, and fitting frames to a size."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kinema.errors import InputError

FIT_MODES = ("crop", "pad", "resize")


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (3, T, H, W) in [-1, 1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).float()
    return (tensor / 127.5 - 1.0).permute(3, 0, 1, 2).contiguous()


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """float (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    video = video.detach().float().clamp(-1, 1)
    frames = ((video + 1.0) * 127.5).round().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).contiguous().cpu().numpy()


def fit_frames(frames: np.ndarray, width: int, height: int, mode: str = "crop") -> np.ndarray:
    """Fit uint8 (T, H, W, 3) frames to width x height by centre crop, letterbox pad, or plain resize."""
    if mode not in FIT_MODES:
        raise InputError(f"unknown fit mode {mode!r}; choose one of {', '.join(FIT_MODES)}")
    t, h, w, _ = frames.shape
    if (w, h) == (width, height):
        return frames
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    if mode == "resize":
        out = F.interpolate(video, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    else:
        scale = max(width / w, height / h) if mode == "crop" else min(width / w, height / h)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        resized = F.interpolate(video, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        if mode == "crop":
            top, left = (new_h - height) // 2, (new_w - width) // 2
            out = resized[:, :, top : top + height, left : left + width]
        else:
            out = torch.zeros(t, 3, height, width)
            top, left = (height - new_h) // 2, (width - new_w) // 2
            out[:, :, top : top + new_h, left : left + new_w] = resized
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
