"""Asynchronous batch jobs: stored in the `jobs` table, run one at a time in a worker thread.

A job scores a file with the model version pinned when it was accepted, in chunks, through
`keel.train.score_file` (the function behind `keel predict`): predictions to the output,
rows the contract refuses beside it (`OUTPUT.refused.csv`). The state lives in the database,
so `GET` answers after a restart and any replica can run a queued job (taking it is one
conditional UPDATE). While a job runs its server beats (`heartbeat_at`); a running job whose
heartbeat is older than `job_stale_s` is marked failed with the reason: its server stopped.
On completion the callback URL, if any, gets one signed POST (Standard Webhooks, the same
signer as the hooks), retried a few times; how that went is in `callback_status`.

Nothing here runs on the event loop: handlers only insert and read rows (in a thread).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from keel.registry import ModelStore
from keel.store import Settings, as_utc, signed_headers, tables

log = logging.getLogger("keel.serve.jobs")

STATES = ("queued", "running", "succeeded", "failed")
CALLBACK_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Job:
    """One batch job as stored."""

    id: str
    model: str
    version: int
    state: str
    input: str
    output: str
    refused_output: str | None
    callback: str | None
    callback_status: str | None
    rows_in: int
    rows_scored: int
    rows_refused: int
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        """The body of `GET /v1/models/{m}/jobs/{id}` (and of the callback)."""
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "state": self.state,
            "input": self.input,
            "output": self.output,
            "refused_output": self.refused_output,
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "rows_refused": self.rows_refused,
            "error": self.error,
            "callback": self.callback,
            "callback_status": self.callback_status,
            "created_at": self.created_at.isoformat(),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _job(row: Any) -> Job:
    def aware(v: Any) -> dt.datetime | None:
        return as_utc(v) if v is not None else None

    return Job(
        id=row["id"], model=row["model"], version=int(row["version"]), state=row["state"],
        input=row["input"], output=row["output"], refused_output=row["refused_output"],
        callback=row["callback"], callback_status=row["callback_status"],
        rows_in=int(row["rows_in"]), rows_scored=int(row["rows_scored"]),
        rows_refused=int(row["rows_refused"]), error=row["error"],
        created_at=as_utc(row["created_at"]), started_at=aware(row["started_at"]),
        finished_at=aware(row["finished_at"]),
    )  # fmt: skip


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobRunner:
    """The jobs of one server: accept, look up, run (one worker thread), recover.

    Args:
        settings: `job_chunk_rows`, `job_stale_s`.
        models: the registry the jobs score with.
        poll_s: how often the worker looks for queued jobs it was not told about (another
            replica's, or ones left queued by a stopped server).
    """

    def __init__(self, settings: Settings, models: ModelStore, *, poll_s: float = 2.0) -> None:
        self.settings = settings
        self.models = models
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the handlers' side (called in a thread) ------------------------------------------

    def submit(
        self,
        model: str,
        version: int,
        source: Path | str,
        output: Path | str,
        *,
        callback: str | None,
        callback_secret: str | None,
        actor: str = "api",
    ) -> Job:
        """Store a queued job and wake the worker."""
        row = {
            "id": uuid.uuid4().hex, "model": model, "version": version, "state": "queued",
            "input": str(source), "output": str(output), "refused_output": None,
            "callback": callback, "callback_secret": callback_secret, "callback_status": None,
            "rows_in": 0, "rows_scored": 0, "rows_refused": 0, "error": None, "actor": actor,
            "created_at": _now(), "started_at": None, "finished_at": None, "heartbeat_at": None,
        }  # fmt: skip
        with self.models.db.begin() as conn:
            conn.execute(tables.jobs.insert().values(**row))
        self._wake.set()
        return _job(row)

    def get(self, job_id: str) -> Job | None:
        t = tables.jobs
        with self.models.db.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == job_id)).mappings().first()
        return _job(row) if row else None

    # ---- the worker -----------------------------------------------------------------------

    def start(self) -> None:
        """Mark the jobs of a stopped server failed, then start the worker thread."""
        self.recover()
        self._thread = threading.Thread(target=self._work, name="keel-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking jobs; a job running now is left to finish or to be found stale."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def recover(self) -> int:
        """Running jobs whose heartbeat is older than `job_stale_s` become failed, with the
        reason; returns how many."""
        t = tables.jobs
        now = _now()
        limit = now - dt.timedelta(seconds=self.settings.job_stale_s)
        with self.models.db.begin() as conn:
            done = conn.execute(
                t.update()
                .where(t.c.state == "running", t.c.heartbeat_at < limit)
                .values(
                    state="failed",
                    finished_at=now,
                    error=f"The server running this job stopped (no heartbeat for over {self.settings.job_stale_s:g} s); its output may be partial. Submit it again.",
                )
            ).rowcount
        return int(done or 0)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                self.recover()
                while not self._stop.is_set() and (job_id := self._claim()) is not None:
                    self.run(job_id)
            except Exception:  # a database hiccup: the next look tries again
                log.exception("jobs: the worker failed to look for jobs")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _claim(self) -> str | None:
        """Take the oldest queued job: one conditional UPDATE, so two replicas never both do."""
        t = tables.jobs
        with self.models.db.engine.connect() as conn:
            ids = conn.execute(
                sa.select(t.c.id).where(t.c.state == "queued").order_by(t.c.created_at).limit(5)
            ).scalars().all()  # fmt: skip
        for job_id in ids:
            now = _now()
            with self.models.db.begin() as conn:
                taken = conn.execute(
                    t.update()
                    .where(t.c.id == job_id, t.c.state == "queued")
                    .values(state="running", started_at=now, heartbeat_at=now)
                ).rowcount
            if taken:
                return str(job_id)
        return None

    def run(self, job_id: str) -> Job:
        """Score a claimed job, record how it ended, then call back."""
        from keel.train import score_file

        job = self.get(job_id)
        assert job is not None
        beating = threading.Event()
        heart = threading.Thread(target=self._beat, args=(job_id, beating), daemon=True)
        heart.start()
        values: dict[str, Any]
        try:
            if "://" not in job.output:  # under a root: checked
                Path(job.output).parent.mkdir(parents=True, exist_ok=True)
            result = score_file(
                f"{job.model}@{job.version}", job.input, job.output,
                models=self.models, chunk_rows=self.settings.job_chunk_rows,
            )  # fmt: skip
            values = {
                "state": "succeeded", "rows_in": result.rows_in,
                "rows_scored": result.rows_scored, "rows_refused": result.rows_refused,
                "refused_output": result.refused_output,
            }  # fmt: skip
        except Exception as exc:  # the job fails, the server goes on; the reason is stored
            log.warning("job %s failed: %s", job_id, exc)
            values = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}
        finally:
            beating.set()
            heart.join()
        t = tables.jobs
        with self.models.db.begin() as conn:
            conn.execute(t.update().where(t.c.id == job_id).values(finished_at=_now(), **values))
        done = self.get(job_id)
        assert done is not None
        if done.callback:
            self._call_back(done)
        return done

    def _beat(self, job_id: str, done: threading.Event) -> None:
        t = tables.jobs
        while not done.wait(self.settings.job_stale_s / 4):
            try:
                with self.models.db.begin() as conn:
                    conn.execute(t.update().where(t.c.id == job_id).values(heartbeat_at=_now()))
            except Exception:  # a missed beat is retried at the next one
                log.warning("job %s: heartbeat not written", job_id, exc_info=True)

    def _call_back(self, job: Job) -> None:
        """One signed POST of the job's status (`webhook-id` job_<id>), a few tries."""
        import httpx

        t = tables.jobs
        with self.models.db.engine.connect() as conn:
            secret = conn.execute(
                sa.select(t.c.callback_secret).where(t.c.id == job.id)
            ).scalar_one()
        body = orjson.dumps(
            {"type": "job_finished", "timestamp": _now().isoformat(), "data": job.to_json()}
        )
        status = "failed"
        for attempt in range(1, CALLBACK_ATTEMPTS + 1):
            headers = signed_headers(secret, f"job_{job.id}", int(time.time()), body)
            try:
                with httpx.Client(timeout=10.0, follow_redirects=False) as client:
                    answer = client.post(str(job.callback), content=body, headers=headers)
                status = f"HTTP {answer.status_code} after {attempt} attempt(s)"
                if answer.is_success or (
                    400 <= answer.status_code < 500 and answer.status_code != 429
                ):
                    break
            except httpx.HTTPError as exc:
                status = f"{type(exc).__name__} after {attempt} attempt(s)"
            if attempt == CALLBACK_ATTEMPTS or self._stop.wait(2.0 ** (attempt - 1)):
                break
        with self.models.db.begin() as conn:
            conn.execute(t.update().where(t.c.id == job.id).values(callback_status=status[:200]))
