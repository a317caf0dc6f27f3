"""Precompute a study's stimuli as a background job that outlives the page that started it.

`start(db, slug)` queues a job row and starts a detached worker process
(``python -m study precompute SLUG --job ID``; the same command without ``--job`` runs by hand,
in the foreground). Everything about the job lives in the database (``precompute_jobs``): state,
done/total, an estimate of the time left, the worker's heartbeat and pid, per-method timings and
the error, so a page (or another app process) shows it after a reload or a restart. `cancel` sets
a flag the worker reads between maps. The build (`study.stimuli.EngineBuild`) stores every output
under a content key as it goes: a worker killed at any point is resumed by a new `start`, which
skips what is stored, and the final manifest equals that of an uninterrupted run.

A job is *alive* while its heartbeat (written every `HEARTBEAT_S` by a thread of the worker) is
younger than `STALE_S` and, on the worker's own host, its process still runs (pid and process
start time, so a reused pid does not count). A job that is queued or running but not alive has
lost its worker; `start` then replaces it.

The worker is the build's driver. By default it computes every image itself; with ``--ray`` (or
``$CONVIS_RAY`` / ``$RAY_ADDRESS`` in its environment, inherited from the app process that starts
it) it sends the images to a Ray cluster (`convis_core.executors.RayExecutor`) and keeps the rest
(progress, heartbeat, cancel, the manifest). The stimulus folder must then be on a filesystem all
Ray workers see at the same path (deploy/README.md).

No Streamlit here, and `convis_core`/torch are imported only by the worker and `estimate`; Ray
only by a worker asked to use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from study.config import REPO_ROOT, data_dir
from study.db import Database
from study.errors import NotFound, StimulusError, StudyError
from study.models import PrecomputeJob, Study, StudyVersion
from study.spec import ImageFolder, ShapesImages, StudySpec
from study.stimuli import (
    BuildObserver,
    BuildPlan,
    EngineBuild,
    MapEvent,
    canonical_json,
    load_manifest,
    resolve_model,
)

HEARTBEAT_S = 2.0          # the worker's heartbeat period
STALE_S = 20.0             # a heartbeat older than this: the worker is gone
PROGRESS_EVERY_S = 0.25    # progress is written after every map, at most this often
ACTIVE = ("queued", "running")
STATES = ("queued", "running", "done", "failed", "cancelled")
HOST = socket.gethostname()[:255]

_children: list[subprocess.Popen] = []   # workers this process started (reaped by `status`/`start`)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------- job info
@dataclass(frozen=True)
class JobInfo:
    """A job as a page sees it. `alive`: the worker is there (heartbeat fresh, process running);
    `eta_seconds`: the worker's estimate of the time left, counted down since it was written;
    `maps_per_second`: per method, over the maps this job computed (not those found stored)."""

    id: int
    slug: str
    state: str
    done: int
    total: int
    skipped: int
    eta_seconds: float | None
    heartbeat_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    alive: bool
    pid: int | None
    host: str | None
    source: str
    stimuli_dir: str | None
    manifest_sha256: str | None
    cancel_requested: bool
    log_path: str | None
    maps_per_second: dict[str, float] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Queued or running with a live worker."""
        return self.state in ACTIVE and self.alive

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else (1.0 if self.state == "done" else 0.0)

    def log_tail(self, max_bytes: int = 4000) -> str:
        """The end of the worker's log (stdout and stderr), '' if there is none."""
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


def _proc_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc) or None if it is not running
    (a zombie counts as gone); None also where /proc does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X", "x"):
        return None
    return fields[19]


def _process_running(pid: int, start: str | None) -> bool:
    if Path("/proc").is_dir():
        now = _proc_start(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(row: PrecomputeJob, now: datetime | None = None) -> bool:
    if row.state not in ACTIVE:
        return False
    age = ((now or utcnow()) - row.heartbeat_at).total_seconds()
    if age > STALE_S:
        return False
    if row.pid is not None and row.host == HOST:
        return _process_running(row.pid, row.proc_start)
    return True


def _lost_message(row: PrecomputeJob, now: datetime) -> str:
    age = (now - row.heartbeat_at).total_seconds()
    what = "did not start" if row.state == "queued" else "stopped without finishing"
    log = f"; its log: {row.log_path}" if row.log_path else ""
    return (f"the worker (pid {row.pid}) {what}: no heartbeat for {age:.0f} s. Start again to resume: "
            f"{row.done} of {row.total} maps are stored{log}")


def _maps_per_second(timings: dict[str, Any]) -> dict[str, float]:
    out = {}
    for method, t in (timings.get("methods") or {}).items():
        n, s = t.get("first_n", 0) + t.get("next_n", 0), t.get("first_s", 0.0) + t.get("next_s", 0.0)
        if n and s > 0:
            out[method] = n / s
    return out


def _info(row: PrecomputeJob, now: datetime | None = None) -> JobInfo:
    now = now or utcnow()
    alive = _alive(row, now)
    error = row.error
    if row.state in ACTIVE and not alive:
        error = _lost_message(row, now)
    eta = row.eta_seconds
    if eta is not None and row.state == "running" and row.progress_at is not None:
        eta = max(0.0, eta - (now - row.progress_at).total_seconds())
    if row.state == "done":
        eta = 0.0
    return JobInfo(row.id, row.slug, row.state, row.done, row.total, row.skipped, eta, row.heartbeat_at,
                   row.created_at, row.started_at, row.finished_at, error, alive, row.pid, row.host, row.source,
                   row.stimuli_dir, row.manifest_sha256, bool(row.cancel_requested), row.log_path,
                   _maps_per_second(row.timings or {}), dict(row.timings or {}))


def _reap() -> None:
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)


# ---------------------------------------------------------------------------------- what to build
@dataclass
class Target:
    """What `precompute SLUG` builds: the draft's spec, else the active version's (never rebuilt)."""

    spec: StudySpec
    source: str
    folder: Path
    version_manifest: str | None = None   # a launched version's manifest sha256 (check only)


def target(db: Database, slug: str) -> Target:
    """The spec a precompute of `slug` builds (`NotFound` if there is neither draft nor study;
    `SpecError` if the draft no longer validates)."""
    from study.drafts import get_draft

    draft = get_draft(db, slug)
    if draft is not None:
        spec = draft.spec()
        return Target(spec, "draft", spec.stimuli_dir().resolve())
    with db.session() as s:
        row = s.execute(select(StudyVersion).join(Study, StudyVersion.study_id == Study.id)
                        .where(Study.slug == slug, StudyVersion.status == "active")
                        .order_by(StudyVersion.version.desc()).limit(1)).scalar()
        if row is None:
            raise NotFound(f"no draft and no launched study {slug!r}")
        import json

        spec = StudySpec.model_validate({**json.loads(row.config_json)["spec"], "base_dir": ""})
        return Target(spec, f"version {row.version}", Path(row.stimuli_dir), row.manifest_sha256)


def engine_build(spec: StudySpec, folder: Path | None = None) -> EngineBuild:
    """The resumable engine build of an engine-sourced spec."""
    from study.versions import spec_images

    st = spec.stimuli
    return EngineBuild(folder or spec.stimuli_dir(), spec_images(spec), spec.concepts, spec.methods, st.model,
                       st.pretrained, st.style, bank=st.bank, params=st.params)


def _method_name(method: str) -> str:
    from convis_core.methods import ALIASES

    return ALIASES.get(method, method)


def _model_key(spec: StudySpec) -> str:
    return hashlib.sha256(canonical_json(list(resolve_model(spec.stimuli.model, spec.stimuli.pretrained)))
                          .encode()).hexdigest()[:24]


def cost_key(spec: StudySpec, method: str) -> str:
    """What a map's cost depends on: model, bank, style, the method and its parameters."""
    st = spec.stimuli
    body = [list(resolve_model(st.model, st.pretrained)), st.bank, st.style, _method_name(method),
            st.params.get(method, {})]
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()[:24]


# ---------------------------------------------------------------------------------- start / status / cancel
def _log_path(slug: str, job_id: int) -> Path:
    folder = data_dir() / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{slug}-{job_id}.log"


def _new_job(db: Database, slug: str, with_log: bool = False) -> tuple[JobInfo, bool]:
    """Queue a job for `slug`, or give the live one (created = False). A job that lost its worker
    is marked failed first."""
    now = utcnow()
    try:
        with db.session() as s:
            row = s.scalar(select(PrecomputeJob).where(PrecomputeJob.active_slug == slug).with_for_update())
            if row is not None:
                if _alive(row, now):
                    return _info(row, now), False
                _finish(row, "failed", _lost_message(row, now), now)
                s.flush()
            row = PrecomputeJob(slug=slug, active_slug=slug, state="queued", source="", done=0, total=0, skipped=0,
                                timings={}, cancel_requested=False, created_at=now, heartbeat_at=now)
            s.add(row)
            s.flush()
            if with_log:
                row.log_path = str(_log_path(slug, row.id))
            return _info(row, now), True
    except IntegrityError:  # another process queued one at the same moment
        info = status(db, slug)
        if info is None:
            raise
        return info, False


def _finish(row: PrecomputeJob, state: str, error: str | None, now: datetime) -> None:
    row.state, row.active_slug, row.finished_at, row.error = state, None, now, error
    if state != "running":
        row.eta_seconds = None if state != "done" else 0.0


def start(db: Database, slug: str, throttle: float = 0.0, ray: str | None = None) -> JobInfo:
    """Precompute the stimuli of `slug` (its draft, else its active version) in a detached worker
    process. Returns the job; if one is already running for `slug` (alive), that one. Raises
    `NotFound`/`SpecError` at once when there is nothing valid to build. `throttle`: seconds the
    worker pauses after each computed map (to leave CPU to others). `ray`: run the images on a
    Ray cluster (``auto`` or an address; ``local`` forces this machine); by default the worker
    follows ``$CONVIS_RAY`` / ``$RAY_ADDRESS`` of the process that starts it, else stays local
    (`convis_core.executors.resolve`)."""
    _reap()
    target(db, slug)  # fail here, not in the background, on an unknown slug or an invalid draft
    info, created = _new_job(db, slug, with_log=True)
    if not created:
        return info
    cmd = [sys.executable, "-m", "study", "precompute", slug, "--job", str(info.id)]
    if throttle:
        cmd += ["--throttle", str(float(throttle))]
    if ray is not None:
        cmd += ["--ray", ray]
    env = {**os.environ, "DATABASE_URL": db.url}  # not on the command line: a URL may hold a password
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    try:
        with open(info.log_path or os.devnull, "ab") as log:
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        with db.session() as s:
            row = s.get(PrecomputeJob, info.id)
            _finish(row, "failed", f"cannot start the worker: {exc}", utcnow())
        raise StudyError(f"cannot start the precompute worker: {exc}") from None
    _children.append(proc)
    with db.session() as s:  # known at once, so a worker that dies while starting is seen dead at once
        s.execute(update(PrecomputeJob).where(PrecomputeJob.id == info.id, PrecomputeJob.pid.is_(None))
                  .values(pid=proc.pid, host=HOST, proc_start=_proc_start(proc.pid)))
    return status(db, slug) or info


def ready(spec: StudySpec) -> bool:
    """Whether the spec's stimulus folder holds a manifest (built; launch will use it as it is).
    A draft edited after its job ran points to another folder (`study.drafts`), so this, not the
    last job's state, says whether the current draft is built."""
    return (spec.stimuli_dir() / "manifest.json").is_file()


def status(db: Database, slug: str) -> JobInfo | None:
    """The latest precompute job of `slug`, or None if there never was one."""
    _reap()
    with db.session() as s:
        row = s.scalar(select(PrecomputeJob).where(PrecomputeJob.slug == slug)
                       .order_by(PrecomputeJob.id.desc()).limit(1))
        return _info(row) if row is not None else None


def get_job(db: Database, job_id: int) -> JobInfo:
    with db.session() as s:
        row = s.get(PrecomputeJob, job_id)
        if row is None:
            raise NotFound(f"no precompute job {job_id}")
        return _info(row)


def cancel(db: Database, slug: str) -> JobInfo | None:
    """Ask the running job of `slug` to stop; the worker marks it cancelled after the current map
    (a job without a live worker is marked at once). What is stored stays stored; `start` resumes.
    Returns the job (None if `slug` has none)."""
    now = utcnow()
    with db.session() as s:
        row = s.scalar(select(PrecomputeJob).where(PrecomputeJob.active_slug == slug).with_for_update())
        if row is not None:
            row.cancel_requested = True
            if not _alive(row, now):
                _finish(row, "cancelled", None, now)
    return status(db, slug)


# ---------------------------------------------------------------------------------- the worker
class _Stop(Exception):
    """Raised between maps when the job was cancelled (or taken over)."""


class _Terminated(Exception):
    pass


class _Heartbeat(threading.Thread):
    """Writes the heartbeat every `HEARTBEAT_S` and watches for cancellation."""

    def __init__(self, db: Database, job_id: int) -> None:
        super().__init__(daemon=True, name=f"precompute-heartbeat-{job_id}")
        self.db, self.job_id = db, job_id
        self.halt = threading.Event()
        self.stop_requested = threading.Event()

    def beat(self) -> None:
        with self.db.session() as s:
            row = s.get(PrecomputeJob, self.job_id)
            if row is None or row.state != "running" or row.pid != os.getpid() or row.cancel_requested:
                self.stop_requested.set()
                return
            row.heartbeat_at = utcnow()

    def run(self) -> None:
        while not self.halt.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a lost database: the main thread will meet it too
                self.beat()


class _JobObserver(BuildObserver):
    """Progress, timings and the time left, written to the job row (at most every
    `PROGRESS_EVERY_S`, and always after the last map)."""

    def __init__(self, db: Database, job_id: int, hb: _Heartbeat, spec: StudySpec, timings: dict[str, Any],
                 prior: dict[str, dict[str, float]], throttle: float, echo: bool, parallel: int = 1) -> None:
        self.db, self.job_id, self.hb, self.spec, self.throttle, self.echo = db, job_id, hb, spec, throttle, echo
        self.parallel = max(1, parallel)   # images computed at once (workers of the executor)
        self.timings, self.prior = timings, prior
        self.remaining: dict[str, dict[str, int]] = {}
        self.images_left = 0
        self.done = self.total = 0
        self.last_write = 0.0
        self.unwritten: dict[str, Any] = {}

    def planned(self, total: int, stored: int, plan: BuildPlan) -> None:
        self.total, self.done = total, stored
        for item in plan.images:
            if item.stored is None:
                self.images_left += 1
            seen: set[str] = set()
            for m in item.maps:
                if m.stored is None:
                    r = self.remaining.setdefault(m.method, {"first": 0, "next": 0})
                    r["next" if m.method in seen else "first"] += 1
                    seen.add(m.method)
        self.write(force=True, total=total, done=stored, skipped=stored)

    def image_scored(self, image_id: str, seconds: float) -> None:
        t = self.timings.setdefault("image", {"n": 0, "s": 0.0})
        t["n"], t["s"] = t["n"] + 1, t["s"] + seconds
        self.images_left = max(0, self.images_left - 1)

    def map_done(self, done: int, total: int, event: MapEvent) -> None:
        kind = "first" if event.first else "next"
        t = self.timings.setdefault("methods", {}).setdefault(event.method, {
            "key": cost_key(self.spec, event.method), "first_n": 0, "first_s": 0.0, "next_n": 0, "next_s": 0.0})
        t[f"{kind}_n"] += 1
        t[f"{kind}_s"] += event.seconds
        r = self.remaining.get(event.method)
        if r is not None:
            r[kind] = max(0, r[kind] - 1)
        self.done = done
        if self.echo:
            print(f"[{done}/{total}] {event.image} {event.concept} {event.method} {event.seconds:.2f} s",
                  file=sys.stderr, flush=True)
        self.write(force=done == total, done=done)
        if self.throttle > 0:
            time.sleep(self.throttle)

    def check(self) -> None:
        if self.hb.stop_requested.is_set():
            raise _Stop()
        if self.unwritten:   # progress held back by the rate limit (a Ray worker's maps arrive at once)
            self.write(**self.unwritten)

    def _cost(self, method: str, kind: str) -> float | None:
        t = (self.timings.get("methods") or {}).get(method)
        if t and t[f"{kind}_n"]:
            return t[f"{kind}_s"] / t[f"{kind}_n"]
        p = self.prior.get(method)
        if p and p.get(kind) is not None:
            return p[kind]
        if t and t["first_n" if kind == "next" else "next_n"]:  # the other kind, as a stand-in
            other = "first" if kind == "next" else "next"
            return t[f"{other}_s"] / t[f"{other}_n"]
        return None

    def eta(self) -> float | None:
        total = 0.0
        for method, r in self.remaining.items():
            for kind in ("first", "next"):
                if r[kind]:
                    cost = self._cost(method, kind)
                    if cost is None:
                        return None
                    total += r[kind] * cost
        total += self.throttle * sum(r["first"] + r["next"] for r in self.remaining.values())
        if self.images_left:
            img = self.timings.get("image") or {}
            per = img["s"] / img["n"] if img.get("n") else self.prior.get("__image__", {}).get("s", 0.0)
            total += self.images_left * per
        return total / self.parallel

    def write(self, force: bool = False, **values: Any) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < PROGRESS_EVERY_S:
            self.unwritten.update(values)
            return
        values = {**self.unwritten, **values}
        self.unwritten = {}
        self.last_write = now
        stamp = utcnow()
        with self.db.session() as s:
            row = s.get(PrecomputeJob, self.job_id)
            for k, v in values.items():
                setattr(row, k, v)
            row.eta_seconds = self.eta()
            row.timings = dict(self.timings)
            row.heartbeat_at = row.progress_at = stamp
            if row.cancel_requested or row.state != "running" or row.pid != os.getpid():
                self.hb.stop_requested.set()


def _claim(db: Database, job_id: int) -> bool:
    now = utcnow()
    with db.session() as s:
        row = s.get(PrecomputeJob, job_id)
        if row is None or row.state != "queued":
            return False
        if row.cancel_requested:
            _finish(row, "cancelled", None, now)
            return False
        row.state, row.pid, row.host, row.proc_start = "running", os.getpid(), HOST, _proc_start(os.getpid())
        row.started_at = row.heartbeat_at = now
        return True


def _end(db: Database, job_id: int, state: str, error: str | None = None, **values: Any) -> None:
    with db.session() as s:
        row = s.get(PrecomputeJob, job_id)
        if row is None or row.pid != os.getpid() or row.state != "running":
            return  # taken over (marked lost by a `start` elsewhere): leave the row to its new owner
        for k, v in values.items():
            setattr(row, k, v)
        _finish(row, state, error, utcnow())


def _prior_figures(db: Database, spec: StudySpec) -> dict[str, dict[str, float]]:
    """Per-method mean seconds per first/next map measured by earlier jobs on the same model,
    bank, style, method and parameters (the latest job that computed such maps)."""
    keys = {m: cost_key(spec, m) for m in spec.methods}
    model = _model_key(spec)
    out: dict[str, dict[str, float]] = {}
    with db.session() as s:
        rows = s.execute(select(PrecomputeJob.timings).where(PrecomputeJob.state.in_(("done", "failed", "cancelled")))
                         .order_by(PrecomputeJob.id.desc()).limit(50)).scalars().all()
    for timings in rows:
        for t in (timings or {}).get("methods", {}).values():
            for method, key in keys.items():
                if t.get("key") == key and method not in out:
                    fig = {k: t[f"{k}_s"] / t[f"{k}_n"] for k in ("first", "next") if t.get(f"{k}_n")}
                    if fig:
                        out[method] = fig
        img = (timings or {}).get("image") or {}
        if "__image__" not in out and (timings or {}).get("model") == model and img.get("n"):
            out["__image__"] = {"s": img["s"] / img["n"]}
        if "__setup__" not in out and (timings or {}).get("model") == model and "setup_s" in (timings or {}):
            out["__setup__"] = {"s": float(timings["setup_s"])}
    return out


def _check_launched_folder(db: Database, folder: Path, build: EngineBuild, plan: BuildPlan) -> None:
    """Refuse to change a folder that a launched version uses (its maps and manifest are frozen)."""
    with db.session() as s:
        used = s.execute(select(Study.slug, StudyVersion.version, StudyVersion.manifest_sha256)
                         .join(Study, StudyVersion.study_id == Study.id)
                         .where(StudyVersion.stimuli_dir == str(folder))).all()
    if not used:
        return
    if plan.complete and build.manifest().sha256() in {m for _, _, m in used}:
        return
    slug, version, _ = used[0]
    raise StimulusError(f"{folder} holds the stimuli of launched study {slug!r} version {version}; this spec "
                        f"would change them. Give it another stimuli.dir (or none: a draft then gets a folder "
                        f"of its own)")


def run_worker(db: Database, slug: str, job_id: int | None = None, throttle: float = 0.0,
               echo: bool = False, ray: str | None = None) -> JobInfo:
    """The worker: build the stimuli of `slug` as job `job_id` (queued by `start`), or as a new
    job when run by hand (refused while another worker of `slug` is alive). `ray`: where the
    images are computed (see `start`); this process stays the driver (progress, cancel,
    manifest). Returns the job as it ended; failures are stored on the job (state failed,
    `error`), not raised."""
    if job_id is None:
        target(db, slug)
        info, created = _new_job(db, slug)
        if not created:
            raise StudyError(f"a precompute job for {slug!r} is already running (job {info.id}, pid {info.pid} "
                             f"on {info.host}); cancel it first")
        job_id = info.id
    if not _claim(db, job_id):
        return get_job(db, job_id)
    print(f"precompute job {job_id} of {slug!r}: started, pid {os.getpid()} on {HOST}", file=sys.stderr, flush=True)
    hb = _Heartbeat(db, job_id)
    hb.start()
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None

    def on_term(signum: int, frame: Any) -> None:
        raise _Terminated()

    if previous is not None:
        signal.signal(signal.SIGTERM, on_term)
    try:
        _work(db, slug, job_id, hb, throttle, echo, ray)
    except _Stop:
        _end(db, job_id, "cancelled")
    except _Terminated:
        _end(db, job_id, "failed", "the worker was stopped (SIGTERM); start again to resume")
    except StudyError as exc:
        _end(db, job_id, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001  the page shows it; the log keeps the traceback
        traceback.print_exc()
        _end(db, job_id, "failed", f"{type(exc).__name__}: {exc}")
    finally:
        hb.halt.set()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    info = get_job(db, job_id)
    print(f"precompute job {job_id} of {slug!r}: {info.state}, {info.done}/{info.total} maps"
          + (f": {info.error}" if info.error else ""), file=sys.stderr, flush=True)
    return info


def _work(db: Database, slug: str, job_id: int, hb: _Heartbeat, throttle: float, echo: bool,
          ray: str | None = None) -> None:
    t0 = time.perf_counter()
    tgt = target(db, slug)
    spec, folder = tgt.spec, tgt.folder
    with db.session() as s:
        row = s.get(PrecomputeJob, job_id)
        row.source, row.stimuli_dir = tgt.source, str(folder)
    if tgt.version_manifest is not None:  # a launched version: check its folder, never rebuild it
        manifest = load_manifest(folder)
        if manifest.sha256() != tgt.version_manifest:
            raise StimulusError(f"the stimuli in {folder} changed since {tgt.source} was launched")
        n = len(manifest.stimuli)
        _end(db, job_id, "done", total=n, done=n, skipped=n, manifest_sha256=manifest.sha256())
        return
    if spec.stimuli.source == "synthetic":
        from study.versions import build_stimuli

        manifest = build_stimuli(spec)
        n = len(manifest.stimuli)
        _end(db, job_id, "done", total=n, done=n, manifest_sha256=manifest.sha256())
        return
    build = engine_build(spec, folder)
    plan = build.plan()  # loads the model, hashes the sources, finds what is stored
    _check_launched_folder(db, folder, build, plan)
    from convis_core import ConvisError
    from convis_core.executors import LocalExecutor, get_executor

    try:
        executor = get_executor(ray) if not plan.complete else LocalExecutor()
    except ConvisError as exc:
        raise StudyError(str(exc)) from None
    try:
        build.warm_bank(executor)
        timings: dict[str, Any] = {"model": _model_key(spec), "setup_s": time.perf_counter() - t0,
                                   "executor": executor.describe()}
        obs = _JobObserver(db, job_id, hb, spec, timings, _prior_figures(db, spec), throttle, echo,
                           parallel=executor.workers)
        manifest = build.run(obs, executor=executor)
    finally:
        executor.close()
    n = len(manifest.stimuli)
    _end(db, job_id, "done", total=n, done=n, eta_seconds=0.0, timings=dict(timings),
         manifest_sha256=manifest.sha256())


# ---------------------------------------------------------------------------------- estimate
@dataclass(frozen=True)
class Estimate:
    """The expected duration of a full build, before starting it.

    `seconds` = `setup_seconds` + `n_images` × `per_image_seconds` + the sum of
    `per_method_seconds`; a method's figure is `n_images` × (first map + (`n_concepts` − 1) ×
    further map), because ConVis encodes an image's crops once for all its concepts.
    `basis[method]` says where its figures come from; `maps_per_second[method]` over the study."""

    n_images: int
    n_concepts: int
    n_methods: int
    n_maps: int
    seconds: float
    per_method_seconds: dict[str, float]
    per_image_seconds: float = 0.0
    setup_seconds: float = 0.0
    maps_per_second: dict[str, float] = field(default_factory=dict)
    basis: dict[str, str] = field(default_factory=dict)


_CALIBRATIONS: dict[str, tuple[dict[str, float], str]] = {}   # cost key -> ({"first": s, "next": s}, basis)
_MODEL_COSTS: dict[str, dict[str, float]] = {}    # model key -> {"load": s, "image": s}


def count_images(spec: StudySpec) -> int:
    """How many images the spec's stimuli are built on."""
    if spec.stimuli.source == "synthetic":
        return spec.stimuli.n_images
    if isinstance(spec.images, ShapesImages):
        return spec.images.shapes
    if isinstance(spec.images, list):
        return len(spec.images)
    if isinstance(spec.images, ImageFolder):
        from study.versions import spec_images

        return len(spec_images(spec))
    raise StimulusError("the spec lists no images")


def estimate(spec: StudySpec, db: Database | None = None, calibrate: bool = True) -> Estimate:
    """An estimate of a full precompute of `spec` on this machine, from measurements only:

    1. per-method costs measured by earlier jobs on the same model, bank, style, method and
       parameters (with `db`; the latest job that computed such maps, see `cost_key`);
    2. else a calibration in this process, cached per cost key: the study's model is loaded (as
       the worker will), its first image is scored, and each method draws one map for the first
       concept (ConVis with crop caches off, so the crop encoding is paid as on a new image) and
       one for the second concept (ConVis reusing that image's crops). A bank the model has not
       embedded yet is timed on 256 sampled texts and scaled (small banks, ≤ 5,000 rows, are
       embedded for real and cached, as the job would); ConVis maps against such a large bank
       count the crop encoding only (the rank index adds ~25 % on the full bank, README).
    With `calibrate=False` a method without stored figures is left out and said so in `basis`.
    One image on a shared CPU is a rough figure (±50 % is ordinary); the running job's own
    `eta_seconds` replaces it with what it measures. Synthetic stimuli take about no time."""
    n_images = count_images(spec)
    n_c, n_m = len(spec.concepts), len(spec.methods)
    n_maps = n_images * n_c * n_m
    if spec.stimuli.source == "synthetic":
        return Estimate(n_images, n_c, n_m, n_maps, 0.0, dict.fromkeys(spec.methods, 0.0),
                        basis=dict.fromkeys(spec.methods, "synthetic stimuli: no model, built at launch in seconds"))
    figures: dict[str, dict[str, float]] = {}
    basis: dict[str, str] = {}
    prior = _prior_figures(db, spec) if db is not None else {}
    for m in spec.methods:
        key = cost_key(spec, m)
        if m in prior:
            figures[m], basis[m] = prior[m], "measured by an earlier job with the same settings"
        elif key in _CALIBRATIONS:
            figures[m], basis[m] = _CALIBRATIONS[key]
    missing = [m for m in spec.methods if m not in figures]
    mkey = _model_key(spec)
    if missing and calibrate:
        _calibrate(spec, missing)
        for m in missing:
            figures[m], basis[m] = _CALIBRATIONS[cost_key(spec, m)]
    elif missing:
        for m in missing:
            basis[m] = "no figures yet (an earlier job or a calibration measures them)"
    model_costs = _MODEL_COSTS.get(mkey, {})
    per_image = prior.get("__image__", {}).get("s", model_costs.get("image", 0.0))
    setup = prior.get("__setup__", {}).get("s", model_costs.get("load", 0.0) + model_costs.get("bank", 0.0))
    per_method: dict[str, float] = {}
    mps: dict[str, float] = {}
    for m, fig in figures.items():
        first = float(fig.get("first", fig.get("next", 0.0)))
        nxt = float(fig.get("next", first))
        per_method[m] = n_images * (first + (n_c - 1) * nxt)
        if per_method[m] > 0:
            mps[m] = n_images * n_c / per_method[m]
    seconds = setup + n_images * per_image + sum(per_method.values())
    return Estimate(n_images, n_c, n_m, n_maps, seconds, per_method, per_image, setup, mps, basis)


def _calibrate(spec: StudySpec, methods: list[str]) -> None:
    import numpy as np

    from convis_core import (
        ConvisError,
        bank_embeddings,
        concept_scores,
        get_bank,
        get_method,
        load_image,
        load_model_cached,
    )
    from convis_core.bank import bank_is_cached
    from study.versions import spec_images

    st = spec.stimuli
    name, weights = resolve_model(st.model, st.pretrained)
    mkey = _model_key(spec)
    costs = _MODEL_COSTS.setdefault(mkey, {})
    t0 = time.perf_counter()
    try:
        model = load_model_cached(name, weights)
    except (ConvisError, RuntimeError, ValueError, AssertionError, OSError) as exc:
        raise StimulusError(f"cannot load model {name!r} ({weights}): {exc}") from None
    costs.setdefault("load", time.perf_counter() - t0)
    first_id, first = next(iter(spec_images(spec).items()))
    try:
        t0 = time.perf_counter()
        image = load_image(first["image"] if "image" in first else first["path"])
        concept_scores(model, image, list(spec.concepts))
        costs["image"] = time.perf_counter() - t0
    except ConvisError as exc:
        raise StimulusError(f"image {first_id!r}: {exc}") from None
    concepts = spec.concepts[:2]
    bank = get_bank(st.bank)
    text: np.ndarray | None = None
    bank_note = ""
    if any(getattr(get_method(m), "uses_bank", False) for m in methods):
        if bank_is_cached(model, bank) or len(bank) <= 5000:
            t0 = time.perf_counter()
            cached = bank_is_cached(model, bank)
            text = bank_embeddings(model, bank)
            costs["bank"] = 0.0 if cached else time.perf_counter() - t0
        else:
            rng = np.random.default_rng(0)
            sample = [bank.texts[i] for i in rng.choice(len(bank), 256, replace=False)]
            t0 = time.perf_counter()
            model.encode_texts(sample)
            costs["bank"] = (time.perf_counter() - t0) * len(bank) / 256
            bank_note = "; bank not embedded yet: its embedding is in the setup time, the rank index is not counted"
    for m in methods:
        method = get_method(m)
        try:
            first_s, next_s = _time_method(model, image, m, concepts, st.params.get(m, {}), st.bank, bank, text,
                                           st.style)
        except ConvisError as exc:
            raise StimulusError(f"calibration of {m!r} on image {first_id!r}: {exc}") from None
        note = bank_note if getattr(method, "uses_bank", False) else ""
        _CALIBRATIONS[cost_key(spec, m)] = ({"first": first_s, "next": next_s},
                                            f"calibrated now: maps of {first_id!r} for a first and a further "
                                            f"concept{note}")


def _time_method(model: Any, image: Any, m: str, concepts: list[str], params: dict[str, Any], bank_spec: str,
                 bank: Any, text: Any, style: str) -> tuple[float, float]:
    """Seconds of a first map and of a further concept's map of `image` with method `m`."""
    import numpy as np

    from convis_core import (
        ConVisEngine,
        GridParams,
        StochasticParams,
        explain,
        get_method,
        render_png,
    )

    method = get_method(m)
    times: list[float] = []
    if method.name not in ("convis_grid", "convis_stochastic"):
        for c in concepts:
            t0 = time.perf_counter()
            render_png(explain(model, image, c, method=m, bank=bank_spec, **params), image.original, style=style)
            times.append(time.perf_counter() - t0)
        return times[0], times[-1]
    p = method.params(**params).model_dump()
    engine = ConVisEngine(model, bank, disk_cache=False, _text=text)  # no crop cache: paid as on a new image
    if text is None:  # a large bank not embedded yet: time what does not need it, the crop encoding
        t0 = time.perf_counter()
        if method.name == "convis_grid":
            engine.crops(image, GridParams(**p))
            return time.perf_counter() - t0, 0.0
        from convis_core.boxes import Canvas

        sp = StochasticParams(**p)
        canvas = Canvas.make(image.pixels, sp.pad, sp.seed)
        n = min(16, sp.iterations)
        s0 = sp.box_sizes[0]
        for i in range(n):
            engine.encode_boxes(canvas, np.array([[i, i, i + s0, i + s0]]))
        return (time.perf_counter() - t0) * sp.iterations / n, 0.0
    for c in concepts:
        t0 = time.perf_counter()
        if method.name == "convis_grid":
            res = engine.grid(image, c, GridParams(**p))
        else:
            res = engine.stochastic(image, c, StochasticParams(**p))
        render_png(res, image.original, style=style)
        times.append(time.perf_counter() - t0)
    return times[0], times[-1]
