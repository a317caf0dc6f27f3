"""Where the units of a batch job run: in this process (`LocalExecutor`, the default) or on a Ray
cluster (`RayExecutor`).

A job is a list of independent *units* (one image of a stimulus build, one chunk of a bank's
texts) and two picklable callables:

- ``setup()`` builds a worker's state once (load the model, keep the bank embeddings), and
- ``work(state, unit, ctx)`` does one unit and returns its result; it may call ``ctx.emit(event)``
  to report progress inside the unit and ``ctx.check()`` between steps (raise to stop).

`Executor.map` runs every unit and calls ``on_event(i, event)`` for each event and
``on_result(i, result)`` for each finished unit, always in the driver's thread, then returns the
results in unit order. Locally the events arrive as they happen and ``ctx.check()`` is the
driver's ``check``. On Ray a unit's events are replayed on the driver when the unit returns, and
the driver calls ``check`` every `POLL_S` while it waits: when it raises, the actors are killed
at once (their finished units stay finished) and the exception propagates.

Ray is imported only when a `RayExecutor` is used; the engine never needs it. A Ray worker that
dies in the middle of a unit (killed, out of memory, its node lost) is restarted with the same
setup and the unit runs again (`MAX_RETRIES` times), so units must be idempotent: the stimulus
build and the bank build write every output atomically under a content key. The actors stay up
between jobs of one process that use the same model (`start_workers`), until `close` (when the
executor started Ray itself) or `release_workers`. `Executor.mapper()` adapts an executor to
callers written against ``map(fn, items)`` (the evaluation runner).

Choosing: `get_executor(ray)` with ``--ray`` / ``$CONVIS_RAY`` / ``$RAY_ADDRESS`` (`resolve`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import ConvisError

POLL_S = 0.2        # how often the Ray driver checks for cancellation while it waits
MAX_RETRIES = 3     # restarts of a dead Ray worker, and re-runs of the unit it held
FORWARDED_ENV = ("CONVIS_DATA_DIR", "CONVIS_MODEL", "CONVIS_PRETRAINED", "CONVIS_FAULT_KILL_FILE")
FAULT_ENV = "CONVIS_FAULT_KILL_FILE"   # tests: a Ray worker that claims this file kills itself mid-unit

Setup = Callable[[], Any]
OnEvent = Callable[[int, Any], None]
OnResult = Callable[[int, Any], None]
Check = Callable[[], None]


class Context(Protocol):
    """What a unit sees of the executor."""

    def emit(self, event: Any) -> None:
        """Report progress inside the unit (e.g. one map done)."""

    def check(self) -> None:
        """Raise to stop (locally: the driver's cancellation check; on Ray: nothing)."""


Work = Callable[[Any, Any, Context], Any]


class Executor(ABC):
    """Runs the units of a job; see the module docstring."""

    name: str = "executor"
    remote: bool = False    # True when units run in other processes (maybe other machines)

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many units run at once."""

    @abstractmethod
    def map(self, setup: Setup, work: Work, units: Sequence[Any], on_event: OnEvent | None = None,
            on_result: OnResult | None = None, check: Check | None = None) -> list[Any]:
        """Run `work` on every unit; results in unit order (see the module docstring)."""

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def mapper(self, check: Check | None = None) -> Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]:
        """A drop-in for the built-in ``map(fn, items)``: an iterator of the results in item
        order, each given as soon as it and those before it are done (a caller's progress bar
        moves as they arrive). Every ``fn(item)`` runs as a unit of this executor. `fn` must be
        picklable (a module-level function) and load what it needs itself (e.g. a memoised
        model loader: it stays loaded per worker). Closing the iterator early stops the rest."""
        def run(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
            return _ordered(self, fn, list(items), check)
        return run

    def close(self) -> None:  # noqa: B027  nothing to release unless overridden
        """Release what the executor holds (a Ray connection it opened)."""


def _ordered(ex: Executor, fn: Callable[[Any], Any], units: list[Any], check: Check | None) -> Iterator[Any]:
    """`Executor.mapper`'s iterator: locally lazy like ``map``; remotely, `map` runs in a thread
    and the results are given in order as they arrive."""
    if not ex.remote:
        for unit in units:
            if check is not None:
                check()
            yield fn(unit)
        return
    done: queue.Queue[tuple[int, Any]] = queue.Queue()
    stop = threading.Event()

    def checked() -> None:
        if stop.is_set():
            raise _Closed()
        if check is not None:
            check()

    def target() -> None:
        try:
            ex.map(_NoSetup(), _Apply(fn), units, on_result=lambda i, r: done.put((i, r)), check=checked)
        except BaseException as exc:  # noqa: BLE001  handed to the iterating thread
            done.put((-1, exc))

    thread = threading.Thread(target=target, daemon=True, name="executor-mapper")
    thread.start()
    ready: dict[int, Any] = {}
    try:
        for want in range(len(units)):
            while want not in ready:
                i, value = done.get()
                if i < 0:
                    raise value
                ready[i] = value
            yield ready.pop(want)
    finally:
        stop.set()
        thread.join()


class _Closed(Exception):
    """The consumer of `Executor.mapper`'s iterator stopped early."""


@dataclass(frozen=True)
class _NoSetup:
    """The setup of `Executor.mapper`: units load what they need themselves, so any kept worker
    will do."""

    key: str = "mapper"
    any_worker: bool = True

    def __call__(self) -> None:
        return None


@dataclass(frozen=True)
class _Apply:
    fn: Callable[[Any], Any]

    def __call__(self, state: Any, unit: Any, ctx: Context) -> Any:
        return self.fn(unit)


# ---------------------------------------------------------------------------------- local
@dataclass
class _LocalContext:
    index: int
    on_event: OnEvent | None
    checker: Check | None

    def emit(self, event: Any) -> None:
        if self.on_event is not None:
            self.on_event(self.index, event)

    def check(self) -> None:
        if self.checker is not None:
            self.checker()


class LocalExecutor(Executor):
    """Every unit in this process, one after the other: nothing to configure, no Ray."""

    name = "local"

    @property
    def workers(self) -> int:
        return 1

    def map(self, setup: Setup, work: Work, units: Sequence[Any], on_event: OnEvent | None = None,
            on_result: OnResult | None = None, check: Check | None = None) -> list[Any]:
        if not units:
            return []
        state = setup()
        out = []
        for i, unit in enumerate(units):
            if check is not None:
                check()
            result = work(state, unit, _LocalContext(i, on_event, check))
            if on_result is not None:
                on_result(i, result)
            out.append(result)
        return out


# ---------------------------------------------------------------------------------- Ray
@dataclass
class _Failure:
    """An exception raised by a unit, carried back as a value (Ray retries only dead workers)."""

    error: BaseException


@dataclass
class _RemoteContext:
    events: list[Any] = field(default_factory=list)

    def emit(self, event: Any) -> None:
        self.events.append(event)
        _maybe_fault()

    def check(self) -> None:
        return None


def _maybe_fault() -> None:
    """Fault injection for tests: the first worker to claim `$CONVIS_FAULT_KILL_FILE` (by deleting
    it) kills its own process with SIGKILL, in the middle of its unit."""
    path = os.environ.get(FAULT_ENV)
    if not path:
        return
    try:
        os.unlink(path)
    except OSError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


class _Worker:
    """The body of a Ray actor: `setup` once, then units. Wrapped with `ray.remote` on use."""

    def __init__(self, setup: Setup, env: dict[str, str], version: int) -> None:
        os.environ.update(env)
        self.state = setup()
        self.version = version

    def pid(self) -> int:
        return os.getpid()

    def _take(self, setup: Setup, version: int) -> None:
        """A later job's setup on a worker kept from an earlier one (same `key`), or the current
        setup on a worker restarted with its first: only what it adds (bank embeddings)."""
        if version != self.version:
            refresh = getattr(setup, "refresh", None)
            if refresh is not None:
                refresh(self.state)
            self.version = version

    def run(self, work: Work, unit: Any, env: dict[str, str], setup: Setup, version: int) -> tuple[Any, list[Any]]:
        os.environ.update(env)
        self._take(setup, version)
        ctx = _RemoteContext()
        try:
            return work(self.state, unit, ctx), ctx.events
        except Exception as exc:  # noqa: BLE001  re-raised on the driver as it was
            return _Failure(exc), ctx.events


def resolve(ray: str | None = None) -> str | None:
    """The Ray address a job asks for, or None for the local executor: `ray` when given
    (``local``/``none``/``""`` force local), else ``$CONVIS_RAY``, else ``$RAY_ADDRESS``."""
    for value in (ray, os.environ.get("CONVIS_RAY"), os.environ.get("RAY_ADDRESS")):
        if value is None:
            continue
        value = value.strip()
        return None if value.lower() in ("", "local", "none", "0", "off") else value
    return None


def get_executor(ray: str | None = None, workers: int | None = None) -> Executor:
    """`LocalExecutor` unless Ray is asked for (see `resolve`): ``auto`` connects to the Ray
    cluster running on this machine or starts one; anything else is a cluster address. Actors:
    `workers`, else ``$CONVIS_RAY_WORKERS``, else one per GPU (or CPU) of the cluster; each holds
    a copy of the model in memory."""
    address = resolve(ray)
    if address is None:
        return LocalExecutor()
    if workers is None and os.environ.get("CONVIS_RAY_WORKERS"):
        raw = os.environ["CONVIS_RAY_WORKERS"]
        if not raw.isdigit() or int(raw) < 1:
            raise ConvisError(f"CONVIS_RAY_WORKERS must be a positive whole number, got {raw!r}")
        workers = int(raw)
    return RayExecutor(address, workers=workers)


class RayExecutor(Executor):
    """Units on Ray actors: one per GPU when the cluster has GPUs, else one per CPU (or
    `workers`). Each actor runs `setup` once (model and bank embeddings stay loaded) and then
    takes units one by one, so a slow unit never holds back the others.

    `address`: ``auto`` (the cluster on this machine, else a new local one), an address such as
    ``10.0.0.5:6379`` or ``ray://host:10001``. When Ray is already initialised in this process
    that connection is used as it is.
    """

    name = "ray"
    remote = True

    def __init__(self, address: str = "auto", workers: int | None = None, cpus_per_worker: float = 1.0) -> None:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is in requirements.txt
            raise ConvisError(f"the Ray executor needs the 'ray' package ({exc})") from None
        self._ray = ray
        self._opened = False
        if not ray.is_initialized():
            _reachable(address)
            restore = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
            try:
                ray.init(address=None if address == "auto" else address, log_to_driver=False,
                         include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConvisError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from None
            finally:
                if restore is not None:   # ray.init replaces the driver's SIGTERM handler
                    signal.signal(signal.SIGTERM, restore)
            self._opened = True
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        self.cpus_per_worker = cpus_per_worker
        self._workers = workers or (self.gpus if self.gpus else max(1, int(cpus // cpus_per_worker)))
        self.actor_pids: list[int] = []

    @property
    def workers(self) -> int:
        return self._workers

    def describe(self) -> str:
        kind = "GPU" if self.gpus else "CPU"
        return f"ray ({self.workers} {kind} worker{'s' if self.workers != 1 else ''})"

    def _env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env.setdefault("CONVIS_DATA_DIR", str(_data_dir()))
        return env

    def start_workers(self, setup: Setup, n: int | None = None) -> tuple[list[Any], Any, int]:
        """The actors for `setup` (`n`: default `workers`), started now, with the setup's object
        reference and version: the pool kept from the previous job of this process when its
        setup has the same `key` (the model stays loaded), else new ones. `map` calls it; call
        it first to time or pay the start-up apart."""
        ray = self._ray
        n = n or self.workers
        key = (getattr(setup, "key", None), n, self.gpus, self.cpus_per_worker)
        setup_ref = ray.put(setup)
        _VERSION[0] += 1
        version = _VERSION[0]
        pool = _POOL.get("pool")
        fits = pool is not None and ((pool["key"] == key and key[0] is not None) or getattr(setup, "any_worker", False))
        if fits and pool["job"] == _ray_job(ray):
            try:
                self.actor_pids = ray.get([a.pid.remote() for a in pool["actors"]])
                return pool["actors"], setup_ref, version
            except ray.exceptions.RayActorError:
                pass
        _drop_pool()
        options: dict[str, Any] = {"max_restarts": MAX_RETRIES, "max_task_retries": MAX_RETRIES}
        if self.gpus:
            options["num_gpus"] = 1
        else:
            options["num_cpus"] = self.cpus_per_worker
        actor_cls = ray.remote(_Worker).options(**options)
        actors = [actor_cls.remote(setup_ref, self._env(), version) for _ in range(n)]
        # the constructor's arguments stay referenced: a restarted actor reads them again
        _POOL["pool"] = {"key": key, "actors": actors, "ref": setup_ref, "ray": ray, "job": _ray_job(ray)}
        try:
            self.actor_pids = ray.get([a.pid.remote() for a in actors])
        except ray.exceptions.RayActorError as exc:
            _drop_pool()
            raise ConvisError(f"the Ray workers could not start: {exc}") from None
        return actors, setup_ref, version

    def map(self, setup: Setup, work: Work, units: Sequence[Any], on_event: OnEvent | None = None,
            on_result: OnResult | None = None, check: Check | None = None) -> list[Any]:
        if not units:
            return []
        ray = self._ray
        actors, setup_ref, version = self.start_workers(setup)
        work_ref = ray.put(work)
        env = self._env()
        results: list[Any] = [None] * len(units)
        pending = list(range(len(units)))[::-1]
        running: dict[Any, tuple[int, Any]] = {}
        finished = False
        try:
            for actor in actors:
                if pending:
                    i = pending.pop()
                    running[actor.run.remote(work_ref, units[i], env, setup_ref, version)] = (i, actor)
            while running:
                if check is not None:
                    check()
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    i, actor = running.pop(ref)
                    try:
                        result, events = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        raise ConvisError(f"a Ray worker died {MAX_RETRIES + 1} times on unit {i} "
                                          f"(out of memory? see the Ray logs): {exc}") from None
                    for event in events:
                        if on_event is not None:
                            on_event(i, event)
                    if isinstance(result, _Failure):
                        raise result.error
                    results[i] = result
                    if on_result is not None:
                        on_result(i, result)
                    if pending:
                        j = pending.pop()
                        running[actor.run.remote(work_ref, units[j], env, setup_ref, version)] = (j, actor)
            finished = True
        finally:
            if not finished:   # cancelled or failed: stop the units still running at once
                _drop_pool()
        return results

    def close(self) -> None:
        """End the Ray session this executor started (its workers with it). In a session the
        caller started, the workers stay for the next job with the same model (`release_workers`
        frees them; they end with this process in any case)."""
        if self._opened:
            _drop_pool()
            if self._ray.is_initialized():
                self._ray.shutdown()
        self._opened = False


_POOL: dict[str, Any] = {}   # this process's Ray workers, kept between jobs with the same setup
_VERSION = [0]               # numbers the setups sent to workers


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once (not after minutes of Ray's retries) when nothing answers at HOST:PORT."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConvisError(f"Ray address {address!r}: use 'auto', HOST:PORT (e.g. 10.0.0.5:6379) or ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConvisError(f"nothing answers at the Ray address {address} ({exc}); is the head node started "
                          f"(deploy/ray_cluster.sh head)?") from None


def _ray_job(ray: Any) -> str:
    return str(ray.get_runtime_context().get_job_id())


def release_workers() -> None:
    """Kill this process's Ray workers now (their finished units stay finished)."""
    _drop_pool()


def _drop_pool() -> None:
    pool = _POOL.pop("pool", None)
    if pool is None:
        return
    ray = pool["ray"]
    if ray.is_initialized():
        for actor in pool["actors"]:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)


def _data_dir() -> Path:
    from .paths import data_dir

    return data_dir()


# ---------------------------------------------------------------------------------- model setup
@dataclass
class ModelSetup:
    """A worker's `setup` for engine jobs: the model (and bank embeddings) a unit needs.

    Locally the driver's loaded model is used as it is (`live`). Pickled for a remote worker, it
    carries only the recipe (architecture, weights, seed, precision) and the bank embeddings the
    driver already has (`banks`, keyed like the engine's memo), and the worker loads the model
    once; a worker whose model has another cache key than the driver's refuses to start.
    """

    name: str
    pretrained: str
    seed: int
    dtype: str
    key: str
    banks: dict[tuple[str, str], Any] = field(default_factory=dict)
    live: Any = None

    @classmethod
    def of(cls, model: Any) -> ModelSetup:
        weights = str(model.weights_id)
        seed = int(weights.removeprefix("random-seed")) if weights.startswith("random-seed") else 0
        return cls(model.name, model.pretrained, seed, str(model.dtype).removeprefix("torch."), model.key,
                   live=model)

    def with_bank(self, model: Any, bank: Any, embeddings: Any) -> ModelSetup:
        self.banks[(model.key, bank.key)] = embeddings
        return self

    def refresh(self, model: Any) -> None:
        """A kept worker takes this setup: only the bank embeddings it adds."""
        from .bank import remember_embeddings

        for (model_key, bank_key), emb in self.banks.items():
            remember_embeddings(model_key, bank_key, emb)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "live": None}

    def __call__(self) -> Any:
        if self.live is not None:
            return self.live
        import torch

        from .bank import remember_embeddings
        from .models import load_model

        model = load_model(self.name, self.pretrained, seed=self.seed)
        dtype = getattr(torch, self.dtype)
        if model.dtype != dtype:
            model.to(dtype)
        if model.key != self.key:
            raise ConvisError(f"the worker loaded {self.name!r} ({self.pretrained}) as {model.key}, the driver has "
                              f"{self.key}: workers need the same weights file and code")
        for (model_key, bank_key), emb in self.banks.items():
            remember_embeddings(model_key, bank_key, emb)
        self.live = model
        return model
