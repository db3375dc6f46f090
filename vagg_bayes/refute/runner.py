"""Run many refits of one fitted analysis: in process, in forked workers or on Dask.

A refutation test describes its refits as :class:`RefitTask` values (which test,
which replicate, its seed, the :mod:`~vagg_bayes.refute.transforms` transform that
makes its data from the original panel, optionally a spec *variant*) and hands them to
:meth:`RefitRunner.run`, which returns one :class:`RefitSummary` per task, in task
order. The summary is all a test judges by: each effect's posterior mean, SD and 94 %
HDI (optionally a thinned set of draws), whether the refit passed its diagnostics, its
wall time, or the error that stopped it.

Three ways to run, the same numbers from each (a refit depends only on the data, the
frozen priors and encoding of the first fit, and its seed):

- in process, one refit after another (``workers=1``);
- ``workers=N``: N worker processes forked *after* the first fit, so they inherit the
  compiled models and the first fit's adaptation; inside a worker the chains run one
  after another (no nested process pools);
- ``scheduler=ADDRESS``: tasks go to a Dask ``distributed`` cluster. Each Dask worker
  process fits the analysis once from (spec, settings, original data), caches it and
  refits from then on; chains run one after another there too.

A spec *variant* (:class:`Variant`: a changed spec, such as one more control or
another outcome) is fitted once per process from its *prime* data and then refitted;
a task without a transform returns the prime fit itself.

Robustness: a refit that raises is reported (``error``; counted by the tests as
``n_failed``) and the others go on. With ``cache_dir`` every finished refit's summary
is written atomically to ``cache_dir/<test>-<index>-<key>.json``, where the key hashes
the run (data, spec, settings) and the task (test, replicate, seed, transform); with
``resume=True`` cached summaries are read back instead of refitted, so an interrupted
run continues where it stopped and gives the table an uninterrupted run gives.

A progress bar (tqdm, on standard error) is shown only on a terminal.

May import: numpy, pandas, tqdm, dask.distributed (lazily), the standard library,
vagg_bayes.refute.transforms, vagg_bayes.refute.base, vagg_bayes.report.io,
vagg_bayes.provenance; ``Analysis`` (lazily, in Dask workers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vagg_bayes.provenance import run_fingerprint, spec_record
from vagg_bayes.refute.base import hdi
from vagg_bayes.refute.transforms import Transform, seed_from_key, seed_key

#: draws kept per effect when a task asks for draws (thinned evenly)
KEEP_DRAWS = 400


@dataclass(frozen=True)
class Variant:
    """A changed spec, fitted once (per process) to ``prime(data)`` and refitted after.

    ``key`` names the variant in caches; ``spec`` is the changed spec; ``prime`` makes
    the data of its first fit from the original panel (its priors and encoding are
    frozen from these data). The first fit uses the settings' seed.
    """

    key: str
    spec: Any
    prime: Transform

    def fingerprint(self) -> str:
        """SHA-256 of the key, the spec and the prime transform."""
        spec = spec_record(self.spec)
        text = json.dumps([self.key, spec, self.prime.fingerprint()], sort_keys=True,
                          default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class RefitTask:
    """One refit: test name, replicate index, seed, how to make its data.

    ``transform`` None with a ``variant``: the variant's prime fit itself.
    ``keep_draws``: also return up to :data:`KEEP_DRAWS` draws of every effect.
    """

    test: str
    index: int
    seed: tuple  # transforms.seed_key(SeedSequence)
    transform: Transform | None
    variant: Variant | None = None
    keep_draws: bool = False

    def fingerprint(self) -> str:
        """SHA-256 of everything that decides the refit's numbers."""
        parts = [self.test, str(self.index), repr(self.seed),
                 self.transform.fingerprint() if self.transform is not None else "-",
                 self.variant.fingerprint() if self.variant is not None else "-",
                 str(self.keep_draws)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class RefitSummary:
    """What one refit left: per effect ``mean, sd, hdi_low, hdi_high`` (and draws)."""

    test: str
    index: int
    effects: dict = field(default_factory=dict)
    draws: dict = field(default_factory=dict)
    diagnostics_passed: bool | None = None
    seconds: float = math.nan
    error: str | None = None
    n_rows: int = 0
    n_groups: int = 0
    cached: bool = False

    @property
    def ok(self) -> bool:
        """The refit finished (its diagnostics may still have failed)."""
        return self.error is None

    def mean(self, effect: str) -> float:
        """Posterior mean of ``effect`` (NaN when the refit failed or lacks it)."""
        return float(self.effects.get(effect, {}).get("mean", math.nan))

    def to_json(self) -> dict:
        """Plain-JSON form (floats round-trip exactly)."""
        record = dataclasses.asdict(self)
        record.pop("cached")
        record["draws"] = {k: [float(x) for x in v] for k, v in self.draws.items()}
        return record

    @classmethod
    def from_json(cls, record: dict, *, cached: bool = False) -> RefitSummary:
        """Inverse of :meth:`to_json`."""
        record = dict(record)
        record["draws"] = {k: np.asarray(v, dtype=float) for k, v in
                           record.get("draws", {}).items()}
        return cls(**record, cached=cached)


def summarize_result(task: RefitTask, result, seconds: float) -> RefitSummary:
    """Reduce an :class:`~vagg_bayes.report.result.EstimateResult` to a summary."""
    effects, draws = {}, {}
    for name, values in result.effect_draws.items():
        flat = np.asarray(values, dtype=float).ravel()
        low, high = hdi(flat)
        effects[name] = {"mean": float(flat.mean()), "sd": float(flat.std(ddof=1)),
                         "hdi_low": low, "hdi_high": high}
        if task.keep_draws:
            step = max(1, math.ceil(flat.size / KEEP_DRAWS))
            draws[name] = flat[::step].copy()
    meta = getattr(result, "meta", {}) or {}
    return RefitSummary(task.test, task.index, effects, draws,
                        bool(result.diagnostics.passed), float(seconds),
                        n_rows=int(meta.get("n_rows", 0)),
                        n_groups=int(meta.get("n_groups", 0)))


def sequential_chains(analysis) -> None:
    """Make ``analysis`` (and its compiled equations) run chains one after another.

    Used inside worker processes: their chains must not fork process pools of their
    own. Sets ``cores=1`` on the analysis' settings and on every equation model's.
    """
    def one(settings):
        return dataclasses.replace(settings, cores=1) if settings is not None else None

    analysis.settings = one(analysis.settings)
    for model in (getattr(analysis, "_models", None) or {}).values():
        if hasattr(model, "settings"):
            model.settings = one(model.settings)


# --------------------------------------------------------------------- executing
class WorkerState:
    """A fitted analysis, its original data and its fitted variants (one per process)."""

    def __init__(self, analysis, data: pd.DataFrame, *, settings=None):
        self.analysis = analysis
        self.data = data
        self.settings = settings if settings is not None else analysis.settings
        self.variants: dict[str, tuple[Any, Any, BaseException | None]] = {}
        self.lock = threading.Lock()

    def variant(self, variant: Variant):
        """``(analysis, prime result)`` of a variant, fitting it the first time."""
        if variant.key not in self.variants:
            from vagg_bayes.analysis import Analysis

            analysis = Analysis(variant.spec, self.settings,
                                parameterization=getattr(self.analysis, "parameterization",
                                                         "auto"))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    prime = analysis.fit(variant.prime(self.data), tables=False)
                self.variants[variant.key] = (analysis, prime, None)
            except Exception as exc:  # reported by every task of the variant
                self.variants[variant.key] = (analysis, None, exc)
        analysis, prime, exc = self.variants[variant.key]
        if exc is not None:
            raise RuntimeError(f"the fit of variant {variant.key!r} failed: "
                               f"{_one_line(exc)}") from exc
        return analysis, prime

    def execute(self, task: RefitTask) -> RefitSummary:
        """Run one task; an exception becomes a summary with ``error`` set."""
        start = time.perf_counter()
        try:
            with self.lock, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the diagnostics flag is kept instead
                if task.variant is not None:
                    analysis, prime = self.variant(task.variant)
                    if task.transform is None:
                        result = prime
                    else:
                        result = analysis.refit(task.transform(self.data),
                                                seed=seed_from_key(task.seed))
                else:
                    result = self.analysis.refit(task.transform(self.data),
                                                 seed=seed_from_key(task.seed))
            return summarize_result(task, result, time.perf_counter() - start)
        except Exception as exc:
            return RefitSummary(task.test, task.index, seconds=time.perf_counter() - start,
                                error=_one_line(exc))


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_FORKED: WorkerState | None = None  # the state forked workers inherit


def _fork_init() -> None:
    # Ctrl-C is the parent's: its KeyboardInterrupt leaves the `with Pool` block, which
    # terminates the workers (a worker dying of it inside a task would hang the pool)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _FORKED is not None:
        sequential_chains(_FORKED.analysis)
        _FORKED.settings = dataclasses.replace(_FORKED.settings, cores=1)
        for analysis, _, _ in _FORKED.variants.values():
            sequential_chains(analysis)


def _fork_execute(job: tuple[int, RefitTask]) -> tuple[int, RefitSummary]:
    k, task = job
    return k, _FORKED.execute(task)


# Dask: one state per worker process, keyed by the payload's fingerprint
_DASK_STATES: dict[str, WorkerState] = {}
_DASK_LOCK = threading.Lock()
_DASK_KEEP = 2  # fitted analyses a Dask worker keeps (the oldest is dropped first)


def _dask_state(key: str, payload: tuple) -> WorkerState:
    with _DASK_LOCK:
        if key not in _DASK_STATES:
            from vagg_bayes.analysis import Analysis

            spec, settings, parameterization, data = payload
            settings = dataclasses.replace(settings, cores=1)
            analysis = Analysis(spec, settings, parameterization=parameterization)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                analysis.fit(data, tables=False)
            while len(_DASK_STATES) >= _DASK_KEEP:  # a long-lived worker serves many runs
                _DASK_STATES.pop(next(iter(_DASK_STATES)))
            _DASK_STATES[key] = WorkerState(analysis, data, settings=settings)
        return _DASK_STATES[key]


def dask_execute(key: str, payload: tuple, task: RefitTask) -> dict:
    """Run one task on a Dask worker; return the summary's JSON form.

    The worker fits the analysis (and caches it) the first time.
    """
    start = time.perf_counter()
    try:
        state = _dask_state(key, payload)
    except Exception as exc:
        return RefitSummary(task.test, task.index, seconds=time.perf_counter() - start,
                            error=f"worker could not fit the analysis: {_one_line(exc)}"
                            ).to_json()
    return state.execute(task).to_json()


# --------------------------------------------------------------------- the runner
class RefitRunner:
    """Runs refit tasks of one fitted analysis; see the module docstring.

    Parameters
    ----------
    analysis : Analysis
        Fitted.
    data : DataFrame
        The panel it was fitted to (transforms start from it).
    workers : int, default 1
        Processes; 1 runs in this process.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``); overrides ``workers``.
    cache_dir : path, optional
        Folder of the resume cache (``OUT/refits``).
    resume : bool, default False
        Read finished refits from ``cache_dir`` instead of refitting them; without it
        the cache folder's old summaries are removed first.
    progress : bool, optional
        Show a progress bar; default: when standard error is a terminal.
    """

    def __init__(self, analysis, data: pd.DataFrame, *, workers: int = 1,
                 scheduler: str | None = None, cache_dir: str | Path | None = None,
                 resume: bool = False, progress: bool | None = None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        self.analysis = analysis
        self.data = data.reset_index(drop=True)
        self.workers = int(workers)
        self.scheduler = scheduler
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.resume = resume
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self.state = WorkerState(analysis, self.data)
        self.fingerprint = run_fingerprint(analysis, self.data)
        self.counts = {"run": 0, "cached": 0, "failed": 0}
        self._client = None
        self._payload = None
        if self.cache_dir is not None:
            from vagg_bayes.report.io import cache_folder

            cache_folder(self.cache_dir, "*.json", resume=resume)

    # -- cache
    def _path(self, task: RefitTask) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256((self.fingerprint + task.fingerprint()).encode()).hexdigest()
        return self.cache_dir / f"{task.test}-{task.index:05d}-{key[:20]}.json"

    def _load(self, task: RefitTask) -> RefitSummary | None:
        path = self._path(task)
        if not (self.resume and path is not None and path.is_file()):
            return None
        try:
            return RefitSummary.from_json(json.loads(path.read_text(encoding="utf-8")),
                                          cached=True)
        except (OSError, ValueError, TypeError, KeyError) as exc:  # refit it, loudly
            from vagg_bayes.report.io import warn_unreadable_record

            warn_unreadable_record(path, repr(exc))
            return None

    def _save(self, task: RefitTask, summary: RefitSummary) -> None:
        path = self._path(task)
        if path is None or not summary.ok:
            return  # failed refits are tried again on resume
        from vagg_bayes.report.io import write_text

        text = json.dumps(summary.to_json(), sort_keys=True, allow_nan=True)
        write_text(path, text + "\n")

    # -- running
    def run(self, tasks: Sequence[RefitTask], *, label: str = "refits",
            on_result: Callable[[RefitSummary], None] | None = None) -> list[RefitSummary]:
        """Run ``tasks``; their summaries in task order.

        ``on_result`` is called with each summary as it arrives (cached ones first).
        """
        tasks = list(tasks)
        out: list[RefitSummary | None] = [None] * len(tasks)
        todo = []
        for k, task in enumerate(tasks):
            cached = self._load(task)
            if cached is not None:
                out[k] = cached
                self.counts["cached"] += 1
                if on_result:
                    on_result(cached)
            else:
                todo.append(k)
        bar = self._bar(len(tasks), len(tasks) - len(todo), label)
        try:
            def done(k: int, summary: RefitSummary) -> None:
                out[k] = summary
                self._save(tasks[k], summary)
                self.counts["run"] += 1
                self.counts["failed"] += 0 if summary.ok else 1
                if bar is not None:
                    bar.update(1)
                if on_result:
                    on_result(summary)

            if todo:
                if self.scheduler is not None:
                    self._run_dask(tasks, todo, done)
                elif self.workers > 1 and len(todo) > 1:
                    self._run_forked(tasks, todo, done)
                else:
                    for k in todo:
                        done(k, self.state.execute(tasks[k]))
        finally:
            if bar is not None:
                bar.close()
        return out  # type: ignore[return-value]

    def _bar(self, total: int, initial: int, label: str):
        if not self.progress:
            return None
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread (workers are forked)
        return tqdm(total=total, initial=initial, desc=label, unit="refit",
                    file=sys.stderr, leave=False, dynamic_ncols=True)

    def _prime_variants(self, tasks: list[RefitTask], todo: list[int]) -> None:
        """Fit every variant the tasks need here, before forking (workers inherit it)."""
        for k in todo:
            variant = tasks[k].variant
            if variant is not None:
                try:
                    self.state.variant(variant)
                except RuntimeError:
                    pass  # each task reports it

    def _run_forked(self, tasks, todo, done) -> None:
        global _FORKED
        self._prime_variants(tasks, todo)
        ctx = multiprocessing.get_context("fork")
        _FORKED = self.state
        try:
            with ctx.Pool(min(self.workers, len(todo)), initializer=_fork_init) as pool:
                jobs = [(k, tasks[k]) for k in todo]
                for k, summary in pool.imap_unordered(_fork_execute, jobs, chunksize=1):
                    done(k, summary)
        finally:
            _FORKED = None

    def _client_for(self):
        if self._client is None:
            from distributed import Client

            self._client = Client(self.scheduler, timeout="30s")
            settings = self.analysis.settings
            payload = (self.analysis.spec, settings,
                       getattr(self.analysis, "parameterization", "auto"), self.data)
            self._payload = self._client.scatter([payload], broadcast=True, hash=False)[0]
        return self._client

    def _run_dask(self, tasks, todo, done) -> None:
        from distributed import as_completed

        client = self._client_for()
        futures = {}
        for k in todo:
            future = client.submit(dask_execute, self.fingerprint, self._payload, tasks[k],
                                   pure=False, retries=0)
            futures[future] = k
        for future in as_completed(list(futures)):
            k = futures[future]
            try:
                summary = RefitSummary.from_json(future.result())
            except Exception as exc:  # a worker died, the task was cancelled, ...
                summary = RefitSummary(tasks[k].test, tasks[k].index,
                                       error=f"Dask task failed: {_one_line(exc)}")
            done(k, summary)

    def close(self) -> None:
        """Close the Dask client (the cluster itself is left running)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RefitRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_scheduler(address: str, timeout: float = 10.0) -> None:
    """Connect to the Dask scheduler at ``address`` and disconnect (before any sampling).

    Raises
    ------
    RefutationError
        When it cannot be reached.
    """
    from vagg_bayes.refute.base import RefutationError

    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a dependency
        from vagg_bayes.errors import MissingExtraError

        raise MissingExtraError("distributed", "dask", "--scheduler") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = Client(address, timeout=f"{timeout}s")
            client.close()
    except (OSError, TimeoutError, ValueError) as exc:
        raise RefutationError(
            f"Cannot reach the Dask scheduler at --scheduler {address}: {_one_line(exc)}. "
            "Start one (e.g. `dask scheduler` and `dask worker ADDRESS`), check the address "
            "(tcp://host:8786), or leave --scheduler out to refit on this machine."
        ) from None


def make_tasks(test: str, seeds: Sequence[np.random.SeedSequence],
               transforms: Sequence[Transform | None], *, variant: Variant | None = None,
               keep_draws: bool = False) -> list[RefitTask]:
    """One :class:`RefitTask` per (seed, transform) pair, indexed from 0."""
    return [RefitTask(test, k, seed_key(s), t, variant, keep_draws)
            for k, (s, t) in enumerate(zip(seeds, transforms, strict=True))]


def format_failures(summaries: Sequence[RefitSummary], limit: int = 3) -> str:
    """``"2 of 20 refits failed (replicate 3: ValueError: ...; ...)"``, or ``""``."""
    failed = [s for s in summaries if not s.ok]
    if not failed:
        return ""
    shown = "; ".join(f"replicate {s.index}: {s.error}" for s in failed[:limit])
    more = f"; {len(failed) - limit} more" if len(failed) > limit else ""
    return f"{len(failed)} of {len(summaries)} refits failed ({shown}{more})"
