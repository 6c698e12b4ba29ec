"""The Videos API server against the official `openai` SDK: a real uvicorn server and the tiny checkpoint."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from kinema.io import read_video
from kinema.pipeline import Pipeline
from kinema.server import ServerSettings, Store, create_app, default_db_url
from kinema.server.background import BackgroundServer, free_port
from tests.tiny import make_tiny_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
BLOCKED_PROMPT = "a man being decapitated with a sword, blood spraying everywhere"
PROMPT = "a red ball rolls across the floor"


class Server:
    """A running server with its data folder, store and a helper to make SDK clients."""

    def __init__(self, background: BackgroundServer, app, data_dir: Path):
        self.background, self.app, self.data_dir = background, app, data_dir
        self.store: Store = app.state.store
        self.url = background.url

    def client(self, key: str | None = None) -> openai.OpenAI:
        """An SDK client with a fresh key (or the given one); no retries so errors surface at once."""
        key = key or self.store.add_key("test")[1]
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)


def start_server(folder: Path, **settings) -> Server:
    """Tiny checkpoint, temp data folder and SQLite db, uvicorn in a thread."""
    checkpoint = make_tiny_checkpoint(folder / "ckpt")
    pipe = Pipeline.from_checkpoint(checkpoint)
    data_dir = folder / "data"
    app = create_app(pipe, ServerSettings(data_dir=data_dir, **settings))
    return Server(BackgroundServer(app).start(), app, data_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("server"), workers=2, rate=40.0, burst=30)
    yield running
    running.background.stop()


def png(color=(200, 30, 30), size=(32, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def auth(client: openai.OpenAI) -> dict:
    return {"Authorization": f"Bearer {client.api_key}"}


def test_create_and_poll_then_every_variant(server, tmp_path):
    client = server.client()
    video = client.videos.create_and_poll(prompt=PROMPT, model="sora-2", seconds="1", size="64x64",
                                          poll_interval_ms=100)
    assert video.status == "completed" and video.progress == 100, video.error
    assert video.object == "video" and video.model == "sora-2" and video.seconds == "1" and video.size == "64x64"
    assert video.completed_at >= video.created_at and video.prompt == PROMPT
    assert client.videos.retrieve(video.id).model_dump() == video.model_dump()

    client.videos.download_content(video.id).write_to_file(tmp_path / "v.mp4")
    clip = read_video(tmp_path / "v.mp4")
    assert clip.frames.shape == (8, 64, 64, 3) and clip.fps == pytest.approx(8)
    thumbnail = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumbnail.format == "PNG" and thumbnail.size == (64, 64)
    sheet = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sheet.format == "JPEG" and sheet.width > 64

    report = httpx.get(f"{server.url}/v1/videos/{video.id}/verify", headers=auth(client)).json()
    assert report["kinema_generated"] and report["watermark"]["found"] and report["path"] == f"{video.id}.mp4"
    preview = httpx.get(f"{server.url}/v1/videos/{video.id}/preview", headers=auth(client))
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"


def test_image_reference_remix_extend_edit(server, tmp_path):
    client = server.client()
    source = client.videos.create_and_poll(prompt=PROMPT, input_reference=("start.png", png(), "image/png"),
                                           seconds="1", model="kinema", poll_interval_ms=100)
    assert source.status == "completed", source.error
    client.videos.download_content(source.id).write_to_file(tmp_path / "source.mp4")
    assert read_video(tmp_path / "source.mp4").frames[0].mean(axis=(0, 1))[0] > 100  # starts red

    clip = ("clip.mp4", (tmp_path / "source.mp4").read_bytes(), "video/mp4")
    remix = client.videos.remix(source.id, prompt="the ball turns blue")
    extension = client.videos.extend(prompt="it keeps rolling", seconds="1", video=clip)
    edit = client.videos.edit(prompt="at night", video=clip)
    # SDK 3.57 refuses {"id": ...} video references client-side, so send one as JSON the API also accepts.
    by_id = httpx.post(f"{server.url}/v1/videos/extensions", headers=auth(client),
                       json={"prompt": "it keeps rolling", "seconds": "1", "video": {"id": source.id}})
    assert by_id.status_code == 200, by_id.text
    remix, extension, edit, by_id = (client.videos.poll(v_id, poll_interval_ms=100)
                                     for v_id in (remix.id, extension.id, edit.id, by_id.json()["id"]))
    assert remix.status == extension.status == edit.status == by_id.status == "completed"
    assert remix.remixed_from_video_id == source.id and remix.size == source.size
    assert float(extension.seconds) == float(by_id.seconds) == pytest.approx(2, abs=0.3)  # the stitched total
    client.videos.download_content(extension.id).write_to_file(tmp_path / "extended.mp4")
    assert len(read_video(tmp_path / "extended.mp4").frames) > 8

    character = client.videos.create_character(name="ball", video=("c.mp4", (tmp_path / "source.mp4").read_bytes()))
    assert client.videos.get_character(character.id).name == "ball"


def test_list_pages_and_delete(server):
    client = server.client()
    ids = [client.videos.create(prompt=f"{PROMPT} {i}", seconds="1").id for i in range(3)]
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == ids[::-1][:2] and first.has_more
    assert [v.id for v in client.videos.list(limit=2)] == ids[::-1]  # auto-pagination follows `after`
    assert [v.id for v in client.videos.list(order="asc", limit=1)] == ids
    assert [v.id for v in server.client().videos.list()] == []  # another key sees none of them

    for video_id in ids:
        client.videos.poll(video_id, poll_interval_ms=100)
    deleted = client.videos.delete(ids[0])
    assert deleted.deleted and deleted.id == ids[0] and deleted.object == "video.deleted"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(ids[0])
    assert not (server.data_dir / "videos" / ids[0]).exists()


def test_errors_map_to_sdk_exceptions(server):
    client = server.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.create(prompt=PROMPT, size="720x1280")
    assert err.value.body["param"] == "size" and "multiple of 16" in err.value.message
    assert err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError, match="sora-2") as err:
        client.videos.create(prompt=PROMPT, model="veo-3")
    assert err.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError, match="up to 20"):
        client.videos.create(prompt=PROMPT, seconds="99")
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.create(prompt=BLOCKED_PROMPT)
    assert err.value.code == "moderation_blocked"
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.create(prompt=PROMPT, input_reference=("x.png", b"not really a png", "image/png"))
    assert err.value.code == "invalid_file_type"
    with pytest.raises(openai.APIStatusError) as err:
        client.videos.create(prompt=PROMPT, input_reference=("x.png", png() + bytes(11 * 2**20), "image/png"))
    assert err.value.status_code == 413
    with pytest.raises(openai.AuthenticationError):
        server.client("kn-wrong").videos.list()
    assert httpx.get(f"{server.url}/v1/videos").status_code == 401

    mine = client.videos.create(prompt=PROMPT, seconds="1")
    other = server.client()
    for call in (other.videos.retrieve, other.videos.delete, other.videos.download_content):
        with pytest.raises(openai.NotFoundError):
            call(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.videos.remix(mine.id, prompt="a green cube slides")
    assert client.videos.retrieve(mine.id).id == mine.id


def test_list_cursor_survives_deletion(server):
    client = server.client()
    ids = [client.videos.create(prompt=f"{PROMPT} {i}", seconds="1").id for i in range(5)]
    first = client.videos.list(limit=2)
    client.videos.delete(first.last_id)  # the cursor of the next page is gone
    assert [v.id for v in first.get_next_page().data] == ids[::-1][2:4]
    seen = []
    for video in client.videos.list(limit=2, order="asc"):  # clean up while paging, as scripts do
        seen.append(video.id)
        client.videos.delete(video.id)
    assert seen == [i for i in ids if i != first.last_id] and client.videos.list().data == []
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.list(after="video_unknown")
    assert err.value.body["param"] == "after"
    with pytest.raises(openai.BadRequestError):  # another key's id is no cursor of yours
        server.client().videos.list(after=ids[0])
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(ids[0])  # deleted once; the tombstone is not a video
    assert "deleted" not in httpx.get(f"{server.url}/health").json()["jobs"]


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims to be `width` x `height` (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(100))) + chunk(b"IEND", b"")


def test_bad_values_answer_400_before_any_work(server):
    client = server.client()
    source = client.videos.create_and_poll(prompt=PROMPT, seconds="1", size="64x64", poll_interval_ms=100)
    cases = [
        (dict(size="0x64"), "size"),
        (dict(extra_body={"seed": str(2**70)}), "seed"),  # used to fail at run time with an overflow
        (dict(extra_body={"seed": "-1"}), "seed"),
        (dict(input_reference=("big.png", png_header(20000, 20000), "image/png")), "input_reference"),
        (dict(input_reference=("big.png", png_header(8000, 8000), "image/png")), "input_reference"),
        (dict(input_reference=("cut.png", png()[:40], "image/png")), "input_reference"),
        (dict(extra_body={"input_reference": "start.png"}), "input_reference"),  # text, not a file
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.videos.create(prompt=PROMPT, **kwargs)
        assert err.value.body["param"] == param and "BytesIO" not in err.value.message, kwargs
    for strength in ("5", "0", "nan"):  # used to be queued, then fail
        with pytest.raises(openai.BadRequestError) as err:
            client.videos.remix(source.id, prompt=PROMPT, extra_body={"strength": strength})
        assert err.value.body["param"] == "strength"
    prompt_list = httpx.post(f"{server.url}/v1/videos", headers=auth(client), json={"prompt": [PROMPT, PROMPT]})
    assert prompt_list.status_code == 400 and prompt_list.json()["error"]["param"] == "prompt"
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.edit(prompt=PROMPT, video=("clip.mp4", b"\0\0\0\x18ftypisom" + bytes(200), "video/mp4"))
    assert str(server.data_dir) not in err.value.message  # the upload's temporary file is the server's business
    with pytest.raises(openai.NotFoundError):  # an unknown video is named before the prompt is judged
        client.videos.remix("video_unknown", prompt=BLOCKED_PROMPT)
    assert client.models.retrieve("sora-2").id == "sora-2"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("veo-3")
    assert [v.id for v in client.videos.list()] == [source.id]  # nothing else was queued


def test_video_reports_the_duration_made(server, tmp_path):
    client = server.client()
    video = client.videos.create_and_poll(prompt=PROMPT, seconds="0.3", size="64x64", poll_interval_ms=100)
    client.videos.download_content(video.id).write_to_file(tmp_path / "short.mp4")
    clip = read_video(tmp_path / "short.mp4")
    assert float(video.seconds) == pytest.approx(clip.num_frames / clip.fps, abs=0.01)


def test_unexpected_error_is_an_openai_error(server, monkeypatch):
    client = server.client()

    def broken(*_args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(server.store, "list_videos", broken)
    with pytest.raises(openai.InternalServerError) as err:
        client.videos.list()
    assert err.value.body["type"] == "server_error" and "disk on fire" not in err.value.message

    # The same connection answers the next request: uvicorn closes it when an exception reaches it.
    host, port = server.url.removeprefix("http://").split(":")
    request = (f"GET /v1/videos HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {client.api_key}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=30) as conn, conn.makefile("rb") as replies:
        for expected in (500, 200):
            if expected == 200:
                monkeypatch.undo()
            conn.sendall(request)
            status = replies.readline().split()[1]
            headers = {}
            while (line := replies.readline().strip()):
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            body = json.loads(replies.read(int(headers["content-length"])))
            assert int(status) == expected and headers.get("connection") != "close", (status, headers, body)
    assert body["object"] == "list"


def test_full_queue_and_rate_limit_answer_429(server):
    client = server.client()
    server.app.state.settings.queue_size = 0
    try:
        with pytest.raises(openai.RateLimitError) as err:
            client.videos.create(prompt=PROMPT)
        assert err.value.code == "queue_full"
    finally:
        server.app.state.settings.queue_size = 64
    limiter = server.app.state.limiter
    limiter.rate = 0.01  # bursts of 30, then next to no refill however slow the machine is
    try:
        with pytest.raises(openai.RateLimitError) as err:
            for _ in range(31):
                client.videos.list(limit=1)
        assert err.value.code == "rate_limit_exceeded"
    finally:
        limiter.rate = 40.0
    assert server.client().videos.list().data == []  # the limit is per key


def test_keys_cli_and_page(server, capsys):
    from kinema.cli import main

    url = server.store.url
    assert main(["keys", "add", "carol", "--db", url]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key not in Path(url.split("///")[1]).read_bytes().decode("latin-1")  # only its hash is stored
    client = server.client(key)
    assert client.videos.list().data == []
    assert main(["keys", "revoke", "carol", "--db", url]) == 0
    with pytest.raises(openai.AuthenticationError):
        client.videos.list()
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and 'id="prompt"' in page.text
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def serve_subprocess(checkpoint: Path, data_dir: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "kinema", "serve", "--checkpoint", str(checkpoint), "--data",
                             str(data_dir), "--port", str(port), "--workers", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_killed_server_reruns_its_job_and_loses_nothing(tmp_path):
    checkpoint = make_tiny_checkpoint(tmp_path / "ckpt")
    data_dir = tmp_path / "data"
    _, key = Store(default_db_url(data_dir)).add_key("restart")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    process = serve_subprocess(checkpoint, data_dir, port)
    try:
        wait_for(lambda: healthy(url), 120, "the server to start")
        ids = [client.videos.create(prompt=f"{PROMPT} {i}", seconds="4", size="64x64").id for i in range(3)]
        running = wait_for(lambda: [v.id for v in client.videos.list() if v.status == "in_progress"], 60,
                           "a job to start")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process = serve_subprocess(checkpoint, data_dir, port)
        wait_for(lambda: healthy(url), 120, "the server to restart")
        assert client.videos.retrieve(running[0]).status in ("queued", "in_progress")  # rerun, not lost
        finished = [client.videos.poll(i, poll_interval_ms=100) for i in ids]
        assert [v.status for v in finished] == ["completed"] * 3
        data = client.videos.download_content(running[0]).read()
        (tmp_path / "rerun.mp4").write_bytes(data)
        assert read_video(tmp_path / "rerun.mp4").frames.shape == (32, 64, 64, 3)
    finally:
        process.kill()
        process.wait(10)


def test_graceful_restart_keeps_queued_and_running_jobs(tmp_path):
    running = start_server(tmp_path, workers=1)
    _, key = running.store.add_key("restart")
    client = running.client(key)
    ids = [client.videos.create(prompt=f"{PROMPT} {i}", seconds="20", size="64x64").id for i in range(3)]
    wait_for(lambda: client.videos.retrieve(ids[0]).status == "in_progress", 60, "the first job to start")
    running.background.stop()  # stops between denoising steps, as Ctrl-C or SIGTERM does
    restarted = start_server(tmp_path, workers=1)
    try:
        client = restarted.client(key)
        finished = [client.videos.poll(i, poll_interval_ms=100) for i in ids]
        assert [(v.status, v.seconds) for v in finished] == [("completed", "20")] * 3
    finally:
        restarted.background.stop()


def test_upload_type_checked_from_bytes():
    from kinema.server.inputs import sniff

    assert sniff(png()) == "image/png" and sniff(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp" and sniff(b"\0\0\0\x18ftypisom") == "video/mp4"
    assert sniff(b"<html>") is None and np.frombuffer(png(), np.uint8).size > 0


def test_a_job_that_keeps_stopping_the_server_fails_instead_of_rerunning_forever(tmp_path):
    from kinema.server.store import MAX_ATTEMPTS, new_job

    store = Store(default_db_url(tmp_path / "data"))
    poison = store.add_video(new_job("alice", "kinema", "a red ball", "1", "64x64", "text", {}))
    other = store.add_video(new_job("alice", "kinema", "a blue cube", "1", "64x64", "text", {}))
    for start in range(1, MAX_ATTEMPTS + 1):  # each server start claims it, then the server dies mid-job
        assert store.claim_next().id == poison.id
        requeued = store.requeue_interrupted()
        status = store.get_video(poison.id).status
        assert (requeued, status) == ((1, "queued") if start < MAX_ATTEMPTS else (0, "failed"))
    failed = store.get_video(poison.id)
    assert failed.error_code == "internal_error" and "not run again" in failed.error_message
    assert store.claim_next().id == other.id  # the queue moves on


def test_a_full_disk_answers_507_and_the_server_recovers(tmp_path, small_disk):
    """With its data folder on a full disk (a real 4 MiB tmpfs) the server answers 507 insufficient_storage
    with a message saying so, not a 500; once space is freed it takes and finishes videos again."""
    from tests.conftest import fill_to

    disk = small_disk("4m")
    pipe = Pipeline.from_checkpoint(make_tiny_checkpoint(tmp_path / "ckpt"))
    app = create_app(pipe, ServerSettings(data_dir=disk / "data", workers=1))
    server = Server(BackgroundServer(app).start(), app, disk / "data")
    try:
        client = server.client()
        fill_to(disk, 0)
        with pytest.raises(openai.APIStatusError) as err:
            client.videos.create(prompt=PROMPT, seconds="0.5", size="64x64")
        assert err.value.status_code == 507 and err.value.code == "insufficient_storage", err.value
        assert "disk is full" in err.value.message
        (disk / "filler").unlink()
        video = client.videos.create_and_poll(prompt=PROMPT, seconds="0.5", size="64x64", poll_interval_ms=100)
        assert video.status == "completed", video.error
    finally:
        server.background.stop()
        server.store.engine.dispose()  # closes the database files, so the disk can be unmounted


def test_a_progress_update_the_database_refuses_does_not_fail_the_video(server, monkeypatch):
    """Progress is a hint: a busy or full database while recording it used to fail the whole job."""
    def refuse(*_args):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(server.store, "set_progress", refuse)
    video = server.client().videos.create_and_poll(prompt=PROMPT, seconds="0.5", size="64x64", poll_interval_ms=100)
    assert video.status == "completed", video.error


def test_disk_full_is_told_from_the_errors_that_carry_it():
    import errno
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from kinema.errors import disk_full, file_error

    wrapped = OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("writing failed") from exc
    except RuntimeError as exc:
        chained = exc
    for exc in (OSError(errno.EDQUOT, "Disk quota exceeded"), wrapped, chained,
                file_error(OSError(errno.ENOSPC, "No space left on device"), "/data/v.mp4")):
        assert disk_full(exc), exc
    for exc in (OSError(errno.EACCES, "Permission denied"), RuntimeError("database is locked"), None,
                file_error(OSError(errno.EROFS, "Read-only file system"), "/data/v.mp4")):
        assert not disk_full(exc), exc
