"""Server load: create-and-poll cycles from concurrent SDK clients against a live `kinema serve`.

    .venv/bin/python benchmarks/server.py --cycles 200 --clients 20

Reports errors other than 429 (which the clients back off from and retry), lost jobs (created but not
completed with a downloadable video at the end; must be 0) and retrieve latency percentiles.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kinema.server.background import free_port  # noqa: E402
from kinema.server.store import Store, default_db_url  # noqa: E402

warnings.filterwarnings("ignore", message="The Sora API", category=DeprecationWarning)


def client_loop(client: openai.OpenAI, cycles: int, stats: dict, lock: threading.Lock, poll_s: float) -> None:
    """Create a video and poll it to the end, `cycles` times, backing off on 429."""
    for cycle in range(cycles):
        while True:
            try:
                video = client.videos.create(prompt=f"a red ball bounces, take {cycle}", seconds="1", size="32x32")
                break
            except openai.RateLimitError:
                with lock:
                    stats["429"] += 1
                time.sleep(0.5)
            except openai.APIError as exc:
                with lock:
                    stats["errors"].append(f"create: {exc}")
                video = None
                break
        if video is None:
            continue
        with lock:
            stats["created"].append((video.id, client))
        while video.status in ("queued", "in_progress"):
            time.sleep(poll_s)
            tick = time.perf_counter()
            try:
                video = client.videos.retrieve(video.id)
            except openai.RateLimitError:
                with lock:
                    stats["429"] += 1
                continue
            except openai.APIError as exc:
                with lock:
                    stats["errors"].append(f"retrieve: {exc}")
                break
            with lock:
                stats["retrieve_s"].append(time.perf_counter() - tick)
        if video.status == "failed":
            with lock:
                stats["errors"].append(f"failed: {video.error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="create-and-poll cycles in all")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (one API key each)")
    parser.add_argument("--workers", type=int, default=2, help="server worker threads")
    parser.add_argument("--queue-size", type=int, default=64)
    parser.add_argument("--poll-ms", type=int, default=200, help="client poll interval")
    parser.add_argument("--checkpoint", help="checkpoint folder (default: a tiny random one)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint
        if checkpoint is None:
            from tests.tiny import make_tiny_checkpoint

            checkpoint = make_tiny_checkpoint(tmp / "ckpt")
        data_dir = tmp / "data"
        store = Store(default_db_url(data_dir))
        keys = [store.add_key(f"bench-{i}")[1] for i in range(args.clients)]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "kinema", "serve", "--checkpoint", str(checkpoint), "--data", str(data_dir),
             "--port", str(port), "--workers", str(args.workers), "--queue-size", str(args.queue_size)],
            env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            stats: dict = {"429": 0, "errors": [], "created": [], "retrieve_s": []}
            lock = threading.Lock()
            clients = [openai.OpenAI(base_url=f"{url}/v1", api_key=k, max_retries=0, timeout=60) for k in keys]
            shares = [args.cycles // args.clients + (i < args.cycles % args.clients) for i in range(args.clients)]
            started = time.perf_counter()
            threads = [threading.Thread(target=client_loop, args=(c, n, stats, lock, args.poll_ms / 1000))
                       for c, n in zip(clients, shares, strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
            lost = 0
            for video_id, client in stats["created"]:
                if client.videos.retrieve(video_id).status != "completed":
                    lost += 1
                    continue
                response = httpx.get(f"{url}/v1/videos/{video_id}/content",
                                     headers={"Authorization": f"Bearer {client.api_key}"})
                lost += response.status_code != 200 or response.content[4:8] != b"ftyp"
        finally:
            server.terminate()
            server.wait(30)

    latency_ms = np.array(stats["retrieve_s"]) * 1000
    result = {
        "cycles": args.cycles, "clients": args.clients, "workers": args.workers,
        "created": len(stats["created"]), "errors_other_than_429": len(stats["errors"]),
        "responses_429": stats["429"], "lost_jobs": lost, "retrieves": len(latency_ms),
        "retrieve_p50_ms": round(float(np.percentile(latency_ms, 50)), 2) if len(latency_ms) else None,
        "retrieve_p99_ms": round(float(np.percentile(latency_ms, 99)), 2) if len(latency_ms) else None,
        "wall_s": round(wall, 1), "videos_per_minute": round(len(stats["created"]) / wall * 60, 1),
        "first_errors": stats["errors"][:5],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result.items():
            print(f"{name:>22}: {value}")


if __name__ == "__main__":
    main()
