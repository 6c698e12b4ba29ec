"""Worker threads: claim queued jobs from the store, run them through the shared `Pipeline`, write files.

Torch releases the GIL inside its ops, so N threads in one process make N videos at once with one copy
of the weights. The queue is the database itself: a killed server loses nothing, and at start-up jobs it
left in_progress are queued again.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from kinema.errors import CancelledError, InputError, RefusedError, disk_full
from kinema.io import contact_sheet, read_image, read_video, write_image
from kinema.pipeline import GenerationRequest, Pipeline
from kinema.server.inputs import seconds_label
from kinema.server.store import Store, VideoJob

log = logging.getLogger("kinema.server")

VIDEO_FILE, THUMBNAIL_FILE, SPRITESHEET_FILE = "video.mp4", "thumbnail.png", "spritesheet.jpg"


def job_folder(data_dir: Path, video_id: str) -> Path:
    """Where a job's inputs and outputs live."""
    return data_dir / "videos" / video_id


def png_bytes(frame: np.ndarray, min_width: int = 256) -> bytes:
    """A uint8 (H, W, 3) frame as PNG, enlarged so tiny latent previews are visible."""
    image = Image.fromarray(frame)
    scale = max(1, min_width // max(1, image.width))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class WorkerPool:
    """`workers` threads that run queued jobs until stopped."""

    def __init__(self, pipe: Pipeline, store: Store, data_dir: Path, workers: int = 1,
                 preview_interval: float = 0.5, poll_interval: float = 0.5):
        self.pipe, self.store, self.data_dir = pipe, store, Path(data_dir)
        self.workers = max(1, workers)
        self.preview_interval = preview_interval
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancelled: set[str] = set()
        self._previews: dict[str, bytes] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Requeue interrupted jobs and start the threads."""
        requeued = self.store.requeue_interrupted()
        if requeued:
            log.warning("requeued %d job(s) interrupted by a previous stop", requeued)
        for index in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"kinema-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop between denoising steps; a job cut short stays in_progress and is rerun at the next start."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def wake(self) -> None:
        """Tell idle workers a job was queued."""
        self._wake.set()

    def cancel(self, video_id: str) -> None:
        """Stop a running job (it was deleted) and drop its preview."""
        self._cancelled.add(video_id)
        self._previews.pop(video_id, None)

    def preview(self, video_id: str) -> bytes | None:
        """The latest denoising preview of a running job, as PNG."""
        return self._previews.get(video_id)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next()
            except Exception:  # a database hiccup must not kill the worker
                log.exception("could not claim a job")
                job = None
            if job is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception:  # nor a database hiccup while recording the outcome (the job reruns at restart)
                log.exception("could not record the outcome of job %s", job.id)

    def _run(self, job: VideoJob) -> None:
        folder = job_folder(self.data_dir, job.id)
        try:
            request = self._request(job, folder)
            result = self.pipe.generate_to_file(request, folder / VIDEO_FILE, progress=self._progress_fn(job.id),
                                                cancel=lambda: job.id in self._cancelled or self._stopping.is_set())
            frames = result.frames
            write_image(folder / THUMBNAIL_FILE, frames[len(frames) // 2])
            write_image(folder / SPRITESHEET_FILE, contact_sheet([frames], min(8, len(frames))))
            # The duration made (an extension's stitched total; frame counts round what was asked).
            if not self.store.finish(job.id, seconds_label(round(result.seconds, 2))):
                shutil.rmtree(folder, ignore_errors=True)  # deleted while it was being written
        except CancelledError:
            if job.id in self._cancelled:
                shutil.rmtree(folder, ignore_errors=True)
        except RefusedError as exc:
            self.store.fail(job.id, "moderation_blocked", str(exc))
        except InputError as exc:  # a full disk is the server's problem, not the request's
            self.store.fail(job.id, "insufficient_storage" if disk_full(exc) else "invalid_request", str(exc))
        except Exception as exc:
            log.exception("job %s failed", job.id)
            self.store.fail(job.id, "internal_error", f"generation failed: {type(exc).__name__}: {exc}")
        finally:
            self._previews.pop(job.id, None)
            self._cancelled.discard(job.id)

    def _request(self, job: VideoJob, folder: Path) -> GenerationRequest:
        params = json.loads(job.params)
        request = GenerationRequest(prompt=job.prompt, task=job.task, seconds=params["seconds"],
                                    width=params.get("width"), height=params.get("height"),
                                    seed=int(params.get("seed", 0)), strength=float(params.get("strength", 0.6)))
        if params.get("image"):
            request.image = read_image(folder / params["image"]).frames[0]
        if params.get("video"):
            request.video = read_video(folder / params["video"])
        return request

    def _progress_fn(self, video_id: str):
        last = {"percent": -1, "written": 0.0, "preview": 0.0}

        def progress(event: dict) -> None:
            if event.get("stage") != "denoise":
                return
            now = time.monotonic()
            percent = min(99, int(event.get("fraction", 0.0) * 100))
            if percent != last["percent"] and now - last["written"] >= 0.2:
                try:
                    self.store.set_progress(video_id, percent)
                except Exception as exc:  # a busy or full database: progress is a hint, the video goes on
                    log.warning("job %s: could not record progress %d%% (%s)", video_id, percent, exc)
                last["percent"], last["written"] = percent, now
            if "preview" in event and now - last["preview"] >= self.preview_interval:
                frames = event["preview"]()  # uint8 (t, h, w, 3) at latent resolution
                self._previews[video_id] = png_bytes(frames[len(frames) // 2])
                last["preview"] = now

        return progress
