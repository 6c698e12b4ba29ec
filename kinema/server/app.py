"""The OpenAI-compatible Videos API (FastAPI): routes translate requests into queued `Pipeline` jobs.

Paths, fields and response shapes follow the `openai` SDK's `client.videos` resource, so the official
SDK works with `base_url` pointed here. Every model name it sends means the one loaded checkpoint.
"""

import logging
import shutil
import tempfile
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from kinema.errors import InputError, RefusedError, disk_full
from kinema.io import read_video
from kinema.pipeline import MAX_PROMPT_CHARS, MAX_SEED, Pipeline
from kinema.server.auth import RateLimiter, bearer_token
from kinema.server.inputs import (
    SDK_MODELS,
    ApiError,
    bad_request,
    check_model,
    check_upload,
    not_found,
    parse_seconds,
    parse_size,
    read_body,
    reference_image,
    seconds_label,
    sniff,
)
from kinema.server.store import KeyRecord, Store, VideoJob, default_db_url, new_job, video_dict
from kinema.server.worker import SPRITESHEET_FILE, THUMBNAIL_FILE, VIDEO_FILE, WorkerPool, job_folder

STATIC = Path(__file__).parent / "static"
VARIANTS = {"video": (VIDEO_FILE, "video/mp4"), "thumbnail": (THUMBNAIL_FILE, "image/png"),
            "spritesheet": (SPRITESHEET_FILE, "image/jpeg")}
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "video/mp4": ".mp4"}


@dataclass
class ServerSettings:
    """What `kinema serve` configures."""

    data_dir: Path
    db_url: str | None = None  # default: sqlite:///DATA/kinema.db
    workers: int = 1
    queue_size: int = 64  # queued jobs beyond this are answered 429
    rate: float = 20.0  # requests per second per key (token bucket); 0 turns the limit off
    burst: int = 100
    max_upload_bytes: int = 10 * 1024 * 1024
    max_seconds: float = 20.0
    poll_after_ms: int = 500  # the hint the SDK's poll() waits for between retrieves

log = logging.getLogger(__name__)


class InternalErrors:
    """Unexpected exceptions as an OpenAI-shaped JSON 500 (507 for a full disk), logged here.

    A FastAPI `exception_handler(Exception)` answers too, but Starlette then re-raises the exception to
    the server, and uvicorn closes the client's connection after such a response; answering here, inside
    Starlette's outermost layer, keeps the connection open for the SDK's next request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # half a response is out: only the server can end it
                raise
            if disk_full(exc):  # the database or the data folder cannot grow: say so, not "internal error"
                log.error("%s %s: the disk is full (%s)", scope.get("method"), scope.get("path"), exc)
                error = ApiError(507, "The server's disk is full: it cannot take or record videos until space "
                                 "is freed on its data folder. Try again later.", "insufficient_storage",
                                 type="server_error")
            else:
                log.exception("error on %s %s", scope.get("method"), scope.get("path"))
                error = ApiError(500, f"The server failed on this request ({type(exc).__name__}); it is logged.",
                                 "internal_error", type="server_error")
            await JSONResponse(error.body(), error.status)(scope, receive, send)



def create_app(pipe: Pipeline, settings: ServerSettings) -> FastAPI:
    """The app, with its store and worker pool (started and stopped with the app's lifespan)."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url or default_db_url(data_dir))
    pool = WorkerPool(pipe, store, data_dir, settings.workers)
    limiter = RateLimiter(settings.rate, settings.burst)
    s = pipe.cfg.sampling
    default_size, size_limits = (s.width, s.height), (s.min_side, s.max_side)
    model_names = ("kinema", pipe.cfg.name, pipe.info.id, *SDK_MODELS)
    max_upload = settings.max_upload_bytes
    moderation_lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        from kinema import safety

        await run_in_threadpool(safety.load)  # so the first request does not pay for loading the classifier
        pool.start()
        yield
        await run_in_threadpool(pool.stop)

    app = FastAPI(title="kinema Videos API", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.store, app.state.pool, app.state.settings, app.state.limiter = store, pool, settings, limiter

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(bad_request(f"{param}: {first.get('msg', 'invalid value')}", param).body(), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(ApiError(exc.status_code, str(exc.detail), code).body(), exc.status_code)

    app.add_middleware(InternalErrors)

    def current_key(request: Request) -> KeyRecord:
        """The caller's key from `Authorization: Bearer KEY`, after the rate limit."""
        secret = bearer_token(request.headers.get("authorization"))
        key = store.key_for_secret(secret) if secret else None
        if key is None:
            raise ApiError(401, "Incorrect API key provided. Make one with `kinema keys add NAME` and send it as "
                           "`Authorization: Bearer KEY`.", code="invalid_api_key", type="invalid_request_error")
        wait = limiter.allow(key.id)
        if wait:
            raise ApiError(429, f"Rate limit reached for key '{key.name}': {settings.rate:g} requests/s "
                           f"(bursts of {settings.burst}); try again in {wait:.2f} s.", code="rate_limit_exceeded",
                           type="requests", headers={"retry-after-ms": str(int(wait * 1000) + 1)})
        return key

    Key = Annotated[KeyRecord, Depends(current_key)]

    def owned(video_id: str, key: KeyRecord) -> VideoJob:
        job = store.get_video(video_id, key.id)
        if job is None:
            raise not_found(video_id)
        return job

    def queue_full() -> ApiError:
        return ApiError(429, f"The queue is full ({settings.queue_size} videos waiting); try again shortly.",
                        code="queue_full", type="requests", headers={"retry-after-ms": "1000"})

    def moderate(prompt: str) -> None:
        """Refuse a prompt before any work is queued; a full queue answers 429 before paying for the check."""
        if store.queued_count() >= settings.queue_size:
            raise queue_full()
        if not prompt.strip():
            raise bad_request("prompt is required: describe the video to make", "prompt", "missing_required_parameter")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise bad_request(f"prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}", "prompt")
        from kinema import safety

        try:
            with moderation_lock:  # one classifier pass at a time: concurrent ones only fight for the cores
                safety.enforce(prompt)
        except RefusedError as exc:
            raise ApiError(400, f"Your request was rejected by the safety system: {exc}", code="moderation_blocked",
                           param="prompt") from None

    def enqueue(job: VideoJob, inputs: dict[str, bytes | Path]) -> dict:
        """Write a job's input files, then queue it (429 when the queue is full)."""
        folder = job_folder(data_dir, job.id)
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in inputs.items():
            if isinstance(content, Path):
                shutil.copyfile(content, folder / name)
            else:
                (folder / name).write_bytes(content)
        if store.add_video(job, settings.queue_size) is None:
            shutil.rmtree(folder, ignore_errors=True)
            raise queue_full()
        pool.wake()
        return video_dict(job)

    def source_video(fields: dict, data: bytes | None, key: KeyRecord) -> tuple[Path | bytes, object]:
        """The video to edit or extend (an upload or `video[id]` of a completed video) and its decoded form."""
        reference = fields.get("video[id]") or fields.get("video.id") or fields.get("video_id")
        if data is not None:
            check_upload(data, ("video/mp4",), "video", max_upload)
            with tempfile.NamedTemporaryFile(suffix=".mp4", dir=data_dir) as tmp:
                Path(tmp.name).write_bytes(data)
                try:
                    return data, read_video(tmp.name)
                except InputError as exc:  # its message names the temporary file: not for clients
                    reason = str(exc).replace(f"{tmp.name}: ", "").replace(tmp.name, "video")
                    raise bad_request(f"video could not be decoded: {reason}", "video", "invalid_file_type") from None
        if not reference:
            raise bad_request("video is required: upload an MP4 or pass {'id': VIDEO_ID} of a completed video",
                              "video", "missing_required_parameter")
        source = owned(reference, key)
        if source.status != "completed":
            raise bad_request(f"video '{reference}' is {source.status}; only completed videos can be used",
                              "video", "video_not_ready")
        path = job_folder(data_dir, source.id) / VIDEO_FILE
        return path, read_video(path)

    def source_size(video) -> tuple[int, int]:
        height, width = video.frames.shape[1:3]
        try:
            return pipe.resolve_size(width, height)
        except InputError:
            return default_size

    def seed_of(fields: dict) -> int:
        try:
            seed = int(fields.get("seed") or 0)
        except ValueError:
            seed = -1
        if not 0 <= seed <= MAX_SEED:
            raise bad_request(f"seed '{fields.get('seed')}' is not allowed; choose an integer from 0 to {MAX_SEED}",
                              "seed")
        return seed

    # ---- pages and health -------------------------------------------------------------------
    @app.get("/health", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok", "model": pipe.info.id, "workers": pool.workers, "jobs": store.counts()}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def model_dict(name: str) -> dict:
        return {"id": name, "object": "model", "created": 0, "owned_by": "kinema"}

    @app.get("/v1/models")
    def list_models(key: Key) -> dict:
        return {"object": "list", "data": [model_dict(name) for name in model_names]}

    @app.get("/v1/models/{model}")
    def retrieve_model(model: str, key: Key) -> dict:
        if model not in model_names:
            raise not_found(model, "model")
        return model_dict(model)

    # ---- videos -----------------------------------------------------------------------------
    @app.post("/v1/videos")
    async def create_video(request: Request, key: Key) -> dict:
        fields, files = await read_body(request, max_upload)
        prompt = fields.get("prompt", "")
        model = check_model(fields.get("model"), model_names)
        width, height = parse_size(fields.get("size"), pipe.resolve_size, default_size, size_limits)
        seconds = parse_seconds(fields.get("seconds"), 4.0, settings.max_seconds)
        params = {"seconds": seconds, "width": width, "height": height, "seed": seed_of(fields)}
        await run_in_threadpool(moderate, prompt)
        inputs: dict[str, bytes | Path] = {}
        task = "text"
        image = await run_in_threadpool(reference_image, fields, files, max_upload)
        if image is not None:
            name = "input" + EXTENSIONS[sniff(image)]
            inputs[name], params["image"], task = image, name, "image"
        job = new_job(key.id, model, prompt, seconds_label(seconds), f"{width}x{height}", task, params)
        return await run_in_threadpool(enqueue, job, inputs)

    @app.get("/v1/videos")
    def list_videos(key: Key, after: str | None = None, limit: int = 20, order: str = "desc") -> dict:
        if order not in ("asc", "desc"):
            raise bad_request(f"order '{order}': choose asc or desc", "order")
        if not 1 <= limit <= 100:
            raise bad_request(f"limit {limit}: choose from 1 to 100", "limit")
        try:
            jobs, has_more = store.list_videos(key.id, after, limit, order)
        except InputError as exc:
            raise bad_request(str(exc), "after") from None
        data = [video_dict(j) for j in jobs]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": has_more}

    @app.post("/v1/videos/characters")
    async def create_character(request: Request, key: Key) -> dict:
        fields, files = await read_body(request, max_upload)
        name = fields.get("name", "").strip()
        if not name:
            raise bad_request("name is required", "name", "missing_required_parameter")
        if "video" not in files:
            raise bad_request("video is required: upload an MP4 of the character", "video",
                              "missing_required_parameter")
        data, _video = await run_in_threadpool(source_video, fields, files["video"], key)
        character = await run_in_threadpool(store.add_character, key.id, name)
        folder = data_dir / "characters"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{character.id}.mp4").write_bytes(data)
        return {"id": character.id, "object": "character", "created_at": character.created_at, "name": name}

    @app.get("/v1/videos/characters/{character_id}")
    def get_character(character_id: str, key: Key) -> dict:
        character = store.get_character(character_id, key.id)
        if character is None:
            raise not_found(character_id, "character")
        return {"id": character.id, "object": "character", "created_at": character.created_at,
                "name": character.name}

    @app.post("/v1/videos/edits")
    async def edit_video(request: Request, key: Key) -> dict:
        fields, files = await read_body(request, max_upload)
        prompt = fields.get("prompt", "")
        source, video = await run_in_threadpool(source_video, fields, files.get("video"), key)
        await run_in_threadpool(moderate, prompt)
        return await run_in_threadpool(queue_edit, key, prompt, source, video, fields, None)

    @app.post("/v1/videos/extensions")
    async def extend_video(request: Request, key: Key) -> dict:
        fields, files = await read_body(request, max_upload)
        prompt = fields.get("prompt", "")
        seconds = parse_seconds(fields.get("seconds"), 4.0, settings.max_seconds)
        seed = seed_of(fields)
        source, video = await run_in_threadpool(source_video, fields, files.get("video"), key)
        await run_in_threadpool(moderate, prompt)
        width, height = source_size(video)
        params = {"seconds": seconds, "width": width, "height": height, "seed": seed, "video": "source.mp4"}
        total = seconds_label(round(video.num_frames / video.fps + seconds, 2))
        job = new_job(key.id, check_model(fields.get("model"), model_names), prompt, total,
                      f"{width}x{height}", "extend", params)
        return await run_in_threadpool(enqueue, job, {"source.mp4": source})

    def queue_edit(key: KeyRecord, prompt: str, source, video, fields: dict, remixed_from: str | None) -> dict:
        width, height = source_size(video)
        try:
            strength = float(fields.get("strength") or 0.6)
        except ValueError:
            strength = float("nan")
        if not 0 < strength <= 1:
            raise bad_request(f"strength '{fields.get('strength')}' is not allowed; choose a number above 0 and at "
                              "most 1 (how much of the video is remade; default 0.6)", "strength")
        params = {"seconds": video.num_frames / video.fps, "width": width, "height": height,
                  "seed": seed_of(fields), "strength": strength, "video": "source.mp4"}
        job = new_job(key.id, check_model(fields.get("model"), model_names), prompt,
                      seconds_label(round(video.num_frames / video.fps, 2)), f"{width}x{height}", "edit", params,
                      remixed_from)
        return enqueue(job, {"source.mp4": source})

    @app.get("/v1/videos/{video_id}")
    def retrieve_video(video_id: str, response: Response, key: Key) -> dict:
        job = owned(video_id, key)
        if job.status in ("queued", "in_progress"):
            response.headers["openai-poll-after-ms"] = str(settings.poll_after_ms)
        return video_dict(job)

    @app.delete("/v1/videos/{video_id}")
    def delete_video(video_id: str, key: Key) -> dict:
        status = store.delete_video(video_id, key.id)
        if status is None:
            raise not_found(video_id)
        if status == "in_progress":  # its worker stops at the next step and removes its own folder
            pool.cancel(video_id)
        else:
            shutil.rmtree(job_folder(data_dir, video_id), ignore_errors=True)
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    @app.get("/v1/videos/{video_id}/content")
    def download_content(video_id: str, key: Key, variant: str = "video") -> Response:
        if variant not in VARIANTS:
            raise bad_request(f"variant '{variant}': choose one of {', '.join(VARIANTS)}", "variant")
        job = owned(video_id, key)
        if job.status != "completed":
            raise bad_request(f"video '{video_id}' is {job.status}; content is ready once it is completed",
                              "id", "video_not_ready")
        name, media_type = VARIANTS[variant]
        path = job_folder(data_dir, video_id) / name
        if not path.exists():
            raise ApiError(404, f"the {variant} of '{video_id}' is missing from the server's data folder",
                           code="content_missing")
        return FileResponse(path, media_type=media_type, filename=f"{video_id}{path.suffix}")

    @app.get("/v1/videos/{video_id}/preview")
    def preview(video_id: str, key: Key) -> Response:
        job = owned(video_id, key)
        thumbnail = job_folder(data_dir, video_id) / THUMBNAIL_FILE
        if job.status == "completed" and thumbnail.exists():
            return FileResponse(thumbnail, media_type="image/png")
        png = pool.preview(video_id)
        if png is None:
            raise ApiError(404, f"no preview of '{video_id}' yet; one appears while it denoises",
                           code="preview_not_ready")
        return Response(png, media_type="image/png", headers={"cache-control": "no-store"})

    @app.get("/v1/videos/{video_id}/verify")
    def verify(video_id: str, key: Key) -> dict:
        from kinema import provenance

        job = owned(video_id, key)
        if job.status != "completed":
            raise bad_request(f"video '{video_id}' is {job.status}; it can be verified once completed",
                              "id", "video_not_ready")
        report = provenance.verify(job_folder(data_dir, video_id) / VIDEO_FILE).to_dict()
        report["path"] = f"{video_id}.mp4"  # not the server's own file layout
        return report

    @app.post("/v1/videos/{video_id}/remix")
    async def remix_video(video_id: str, request: Request, key: Key) -> dict:
        fields, _files = await read_body(request, max_upload)
        prompt = fields.get("prompt", "")
        source, video = await run_in_threadpool(source_video, {"video[id]": video_id}, None, key)
        await run_in_threadpool(moderate, prompt)
        return await run_in_threadpool(queue_edit, key, prompt, source, video, fields, video_id)

    return app
