"""The server's durable state through SQLAlchemy: API keys (hashes only), video jobs and characters.

SQLite is the embedded default; a PostgreSQL URL lets several worker hosts share one queue, because a
job is claimed with a conditional UPDATE that only one claimer can win.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Integer, String, Text, create_engine, event, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from kinema.errors import InputError
from kinema.server.auth import hash_key, new_secret

STATUSES = ("queued", "in_progress", "completed", "failed")
# A deleted job keeps its row (prompt and inputs cleared) so a list cursor pointing at it still works.
DELETED = "deleted"
# Starts after which a job interrupted by a stopping server is failed rather than queued again.
MAX_ATTEMPTS = 5


def default_data_dir() -> Path:
    """KINEMA_DATA_DIR, else ~/.local/share/kinema/server."""
    configured = os.environ.get("KINEMA_DATA_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".local" / "share" / "kinema" / "server"


def default_db_url(data_dir: str | os.PathLike | None = None) -> str:
    """sqlite:///DATA/kinema.db for a data folder (default: `default_data_dir()`)."""
    folder = Path(data_dir) if data_dir else default_data_dir()
    return f"sqlite:///{folder.resolve() / 'kinema.db'}"


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[int | None] = mapped_column(Integer, nullable=True)


class VideoJob(Base):
    __tablename__ = "videos"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    owner: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(Integer)
    completed_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model: Mapped[str] = mapped_column(String(100))
    prompt: Mapped[str] = mapped_column(Text)
    seconds: Mapped[str] = mapped_column(String(16))
    size: Mapped[str] = mapped_column(String(16))
    task: Mapped[str] = mapped_column(String(16))
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON: seed, input files, source video ...
    remixed_from_video_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Character(Base):
    __tablename__ = "characters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(Integer)


@dataclass
class KeyRecord:
    """An API key as stored (never the secret itself)."""

    id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None


def _key_record(row: ApiKey) -> KeyRecord:
    return KeyRecord(row.id, row.name, row.prefix, row.created_at, row.revoked_at)


def video_dict(job: VideoJob) -> dict:
    """The OpenAI `Video` object for a job."""
    error = {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None
    return {
        "id": job.id, "object": "video", "status": job.status, "progress": job.progress,
        "created_at": job.created_at, "completed_at": job.completed_at, "expires_at": None,
        "model": job.model, "prompt": job.prompt, "seconds": job.seconds, "size": job.size, "error": error,
        "remixed_from_video_id": job.remixed_from_video_id,
    }


class Store:
    """Keys, jobs and characters in one SQLAlchemy database; safe to share between threads."""

    def __init__(self, url: str):
        self.url = url
        kwargs: dict = {}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite allows one writer; serialising writes here avoids "database is locked" under load.
        self._write = threading.Lock() if url.startswith("sqlite") else _NoLock()

    def session(self) -> Session:
        """A new ORM session."""
        return self._sessions()

    # ---- API keys -----------------------------------------------------------------------------
    def add_key(self, name: str) -> tuple[KeyRecord, str]:
        """Make a key; returns its record and the secret, which is not stored and cannot be shown again."""
        secret = new_secret()
        row = ApiKey(id=f"key_{secrets.token_hex(8)}", name=name, key_hash=hash_key(secret), prefix=secret[:10],
                     created_at=int(time.time()), revoked_at=None)
        with self._write, self.session() as s, s.begin():
            s.add(row)
        return _key_record(row), secret

    def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        with self.session() as s:
            return [_key_record(r) for r in s.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))]

    def revoke_key(self, name_or_id: str) -> list[KeyRecord]:
        """Revoke the live keys with this id or name; returns those revoked."""
        with self._write, self.session() as s, s.begin():
            rows = list(s.scalars(select(ApiKey).where(
                (ApiKey.id == name_or_id) | (ApiKey.name == name_or_id), ApiKey.revoked_at.is_(None))))
            for row in rows:
                row.revoked_at = int(time.time())
            return [_key_record(r) for r in rows]

    def key_for_secret(self, secret: str) -> KeyRecord | None:
        """The live key whose hash matches a presented secret."""
        with self.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None)))
            return _key_record(row) if row else None

    # ---- videos -------------------------------------------------------------------------------
    def add_video(self, job: VideoJob, max_queued: int | None = None) -> VideoJob | None:
        """Queue a job; None when `max_queued` jobs are already waiting."""
        with self._write, self.session() as s, s.begin():
            if max_queued is not None and self.queued_count() >= max_queued:
                return None
            s.add(job)
        return job

    def get_video(self, video_id: str, owner: str | None = None) -> VideoJob | None:
        """A job by id, only if `owner` (when given) owns it."""
        with self.session() as s:
            query = select(VideoJob).where(VideoJob.id == video_id, VideoJob.status != DELETED)
            if owner is not None:
                query = query.where(VideoJob.owner == owner)
            return s.scalar(query)

    def list_videos(self, owner: str, after: str | None, limit: int, order: str) -> tuple[list[VideoJob], bool]:
        """One page of an owner's videos and whether more follow; `after` may name a since-deleted video."""
        with self.session() as s:
            query = select(VideoJob).where(VideoJob.owner == owner, VideoJob.status != DELETED)
            if after:
                anchor = s.scalar(select(VideoJob.seq).where(VideoJob.id == after, VideoJob.owner == owner))
                if anchor is None:
                    raise InputError(f"after '{after}' is not the id of one of your videos; pass the last_id "
                                     "of the previous page")
                query = query.where(VideoJob.seq < anchor if order == "desc" else VideoJob.seq > anchor)
            query = query.order_by(VideoJob.seq.desc() if order == "desc" else VideoJob.seq).limit(limit + 1)
            rows = list(s.scalars(query))
            return rows[:limit], len(rows) > limit

    def delete_video(self, video_id: str, owner: str) -> str | None:
        """Delete an owner's job, leaving a tombstone; returns the status it had, None if there was none."""
        with self._write, self.session() as s, s.begin():
            job = s.scalar(select(VideoJob).where(VideoJob.id == video_id, VideoJob.owner == owner,
                                                  VideoJob.status != DELETED))
            if job is None:
                return None
            status = job.status
            job.status, job.prompt, job.params, job.progress = DELETED, "", "{}", 0
            job.error_code = job.error_message = None
            return status

    def claim_next(self) -> VideoJob | None:
        """Move the oldest queued job to in_progress and return it; None when nothing waits."""
        with self._write, self.session() as s:
            for _ in range(5):
                seq = s.scalar(select(VideoJob.seq).where(VideoJob.status == "queued").order_by(VideoJob.seq).limit(1))
                if seq is None:
                    return None
                won = s.execute(update(VideoJob).where(VideoJob.seq == seq, VideoJob.status == "queued").values(
                    status="in_progress", progress=0, attempts=VideoJob.attempts + 1)).rowcount
                s.commit()
                if won:
                    return s.get(VideoJob, seq, populate_existing=True)
            return None

    def set_progress(self, video_id: str, progress: int) -> None:
        """Record a running job's percentage."""
        with self._write, self.session() as s, s.begin():
            s.execute(update(VideoJob).where(VideoJob.id == video_id, VideoJob.status == "in_progress")
                      .values(progress=progress))

    def finish(self, video_id: str, seconds: str) -> bool:
        """Mark a running job completed (its files are in place); False if it was deleted meanwhile."""
        with self._write, self.session() as s, s.begin():
            return bool(s.execute(update(VideoJob).where(VideoJob.id == video_id, VideoJob.status == "in_progress")
                                  .values(status="completed", progress=100, completed_at=int(time.time()),
                                          seconds=seconds)).rowcount)

    def fail(self, video_id: str, code: str, message: str) -> None:
        """Mark a running job failed with an OpenAI-style error code and a message for people."""
        with self._write, self.session() as s, s.begin():
            s.execute(update(VideoJob).where(VideoJob.id == video_id, VideoJob.status == "in_progress").values(
                status="failed", completed_at=int(time.time()), error_code=code, error_message=message))

    def requeue_interrupted(self) -> int:
        """Put jobs left in_progress by a stopped server back in the queue; returns how many. A job that has
        been started `MAX_ATTEMPTS` times fails instead: if it is what kills the server, it must not do so
        at every start."""
        with self._write, self.session() as s, s.begin():
            s.execute(update(VideoJob).where(VideoJob.status == "in_progress", VideoJob.attempts >= MAX_ATTEMPTS)
                      .values(status="failed", completed_at=int(time.time()), error_code="internal_error",
                              error_message=f"the server stopped during this job {MAX_ATTEMPTS} times; it is not "
                                            "run again (create it anew to retry)"))
            return s.execute(update(VideoJob).where(VideoJob.status == "in_progress")
                             .values(status="queued", progress=0)).rowcount

    def queued_count(self) -> int:
        """Jobs waiting for a worker."""
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(VideoJob).where(VideoJob.status == "queued"))

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        with self.session() as s:
            rows = s.execute(select(VideoJob.status, func.count()).where(VideoJob.status != DELETED)
                             .group_by(VideoJob.status)).all()
        return {status: 0 for status in STATUSES} | {status: n for status, n in rows}

    # ---- characters ---------------------------------------------------------------------------
    def add_character(self, owner: str, name: str) -> Character:
        """Record a character an owner uploaded."""
        row = Character(id=f"char_{secrets.token_hex(12)}", owner=owner, name=name, created_at=int(time.time()))
        with self._write, self.session() as s, s.begin():
            s.add(row)
        return row

    def get_character(self, character_id: str, owner: str) -> Character | None:
        """An owner's character by id."""
        with self.session() as s:
            return s.scalar(select(Character).where(Character.id == character_id, Character.owner == owner))


def new_job(owner: str, model: str, prompt: str, seconds: str, size: str, task: str, params: dict,
            remixed_from: str | None = None) -> VideoJob:
    """A queued job record with a fresh id."""
    return VideoJob(id=f"video_{secrets.token_hex(16)}", owner=owner, status="queued", progress=0,
                    created_at=int(time.time()), model=model, prompt=prompt, seconds=seconds, size=size, task=task,
                    params=json.dumps(params), remixed_from_video_id=remixed_from, attempts=0)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None
