"""The refutation suite: run the selected tests on a fitted analysis and collect one table.

:func:`refute` checks the request (test names, strata, named groups) before any
sampling, fits the analysis when needed, runs each test with one
:class:`~vagg_bayes.refute.runner.RefitRunner` (workers, Dask, resume cache) and returns
a :class:`RefutationResult`, whose :meth:`~RefutationResult.summary` is the single
source of ``refutations.csv`` and of every rendering. A test that raises becomes an
inconclusive row naming the error; the others go on.

Files (:meth:`RefutationResult.write`, each written atomically): ``refutations.csv``
(DESIGN.md section 4.3 columns first), one PNG per resampling test
(``refute_<test>.png``: the refits' estimates against the real one) and
``refute_manifest.json`` (options, seed, tests, settings, spec, versions, data hash,
timings: what a referee needs to rerun it). The resume cache lives in ``OUT/refits/``.

May import: numpy, pandas, the standard library, vagg_bayes.refute.*, vagg_bayes.report
(io, render), vagg_bayes.provenance, vagg_bayes.errors; ``Analysis`` lazily.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from vagg_bayes.errors import DataError, SpecError
from vagg_bayes.progress import silenced, stage
from vagg_bayes.refute.base import (
    REGISTRY,
    Context,
    Options,
    RefutationError,
    Row,
    rows_frame,
)
from vagg_bayes.refute.judge import real_stats

#: the order of the table: refit-free tests first, then the refit-based ones
ORDER = ("graph_independence", "posterior_predictive", "prior_sensitivity",
         "unobserved_common_cause", "placebo_permute_groups", "placebo_time",
         "placebo_mediator", "dummy_outcome", "negative_control_outcome",
         "random_common_cause", "data_subset", "leave_one_group_out", "group_bootstrap")


def available_tests() -> list[str]:
    """Every registered test, in table order (``ORDER`` first, then any others)."""
    from vagg_bayes import refute as _package  # noqa: F401  (registers every test)

    known = [name for name in ORDER if name in REGISTRY]
    return known + sorted(name for name in REGISTRY if name not in ORDER)


def parse_tests(tests: str | Sequence[str] | None) -> list[str]:
    """Test names (a comma-separated string or a list) checked against the registry.

    Raises
    ------
    RefutationError
        For an unknown name, listing the valid ones.
    """
    valid = available_tests()
    if tests is None:
        return valid
    if isinstance(tests, str):
        tests = [t.strip() for t in tests.split(",")]
    names = [t for t in tests if t]
    if not names:
        raise RefutationError("--tests is empty. Name one or more tests separated by commas, "
                              f"or leave --tests out to run all: {', '.join(valid)}.")
    for name in names:
        if name not in REGISTRY:
            import difflib

            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RefutationError(
                f"Unknown refutation test '{name}' in --tests.{hint} Valid tests are: "
                f"{', '.join(valid)}. Fix the spelling, or leave --tests out to run all.")
    return list(dict.fromkeys(names))


#: tests that need neither refits nor predictions (they read the posterior and the data)
NO_REFIT = ("graph_independence", "unobserved_common_cause")


def check_refittable(spec, tests: Sequence[str]) -> None:
    """Refuse, before sampling, tests that refit a design that cannot be refitted.

    The shock design (``[design].shock_year``) is fitted as an event-study panel whose
    refits :meth:`~vagg_bayes.analysis.Analysis.refit` refuses (and whose event-time
    terms cannot be predicted for the data's rows); without this check every such test
    would be an inconclusive row after the first fit. Tests in
    :data:`NO_REFIT` still run. (Instrument specs are refitted with the first fit's
    encoding and priors, so they need no check here.)

    Raises
    ------
    SpecError
        Naming the design, the tests that need refits and the ones that could run.
    """
    if getattr(spec, "shock_year", None) is None:
        return
    refused = [t for t in tests if t not in NO_REFIT]
    if not refused:
        return
    allowed = [t for t in tests if t in NO_REFIT] or list(NO_REFIT)
    raise SpecError(
        f"The shock design ([design].shock_year = {spec.shock_year}) cannot be refitted or "
        "predicted from yet, so these refutation tests, which need refits (or, for "
        f"posterior_predictive, predictions), cannot run on it: "
        f"{', '.join(refused)}. Tests that need no refit can: {', '.join(allowed)}; pass "
        f"--tests {','.join(allowed)} to run only those, or remove [design].shock_year from "
        "the spec to refute the plain panel estimate (`vagg-bayes estimate` fits the shock "
        "design and writes its pre-trend check).")


def check_request(spec, data: pd.DataFrame, tests: Sequence[str], options: Options, *,
                  source: str = "data") -> None:
    """Check what the tests need from the data before any sampling.

    Raises
    ------
    DataError
        ``options.strata`` not a column of the data, or not constant within the
        groups; a group of ``options.drop_groups`` not in the data; the spec's
        negative-control column missing.
    RefutationError
        ``options.strata`` or ``options.drop_groups`` without ``[data].group``.
    SpecError
        A test that refits the estimate on a spec whose design cannot be refitted (the
        shock design, ``[design].shock_year``), naming the tests that could run.
    """
    check_refittable(spec, tests)
    columns = ", ".join(map(str, data.columns[:30])) + (", ..." if data.shape[1] > 30 else "")
    if options.strata is not None:
        if options.strata not in data.columns:
            raise DataError(
                f"Column '{options.strata}' named in --strata is not in {source}. Columns "
                f"are: {columns}. Pass a column that is constant within each group (e.g. a "
                "province or region), or leave --strata out.")
        entity = spec.group or spec.unit
        if entity is None:
            raise RefutationError(
                "--strata needs [data].group (or [data].unit) in the spec: permutations are "
                "stratified by group. Set the group column or leave --strata out.")
        varying = data.groupby(entity, sort=False)[options.strata].nunique(dropna=False)
        if int(varying.max()) > 1:
            bad = varying[varying > 1].index[0]
            bad = bad.item() if hasattr(bad, "item") else bad
            raise DataError(
                f"Column '{options.strata}' named in --strata takes several values within "
                f"{entity} {bad} in {source}; strata must be constant within each value of "
                f"'{entity}' (the treatment is reassigned across whole groups). Pass a "
                "coarser column such as a province.")
    if options.drop_groups:
        if spec.group is None and spec.unit is None:
            raise RefutationError("--drop-groups needs [data].group in the spec; set it or "
                                  "leave --drop-groups out.")
        entity = spec.group or spec.unit
        present = {str(v) for v in pd.unique(data[entity])} if entity in data.columns \
            else set()
        missing = [g for g in options.drop_groups if g not in present]
        if missing:
            shown = ", ".join(sorted(present, key=str)[:10])
            raise DataError(
                f"Group '{missing[0]}' named in --drop-groups is not a value of '{entity}' "
                f"in {source}. Values include: {shown}. Fix the label (as written in the "
                "data) or leave it out.")
    nc = getattr(spec, "negative_control", None)
    if nc is not None and "negative_control_outcome" in tests and nc not in data.columns:
        raise DataError(
            f"Column '{nc}' named in [variables].negative_control is not in {source}. "
            f"Columns are: {columns}. Fix the name in the spec, or remove the key.")


@dataclass(frozen=True, eq=False)
class RefutationResult:
    """The rows of every test, their figures and the record of the run.

    Attributes
    ----------
    rows : tuple of Row
    figures : mapping of str -> callable
        File name -> ``write(path)``.
    record : dict
        Options, tests, seed, settings, spec, versions, data hash, timings, notes of
        each test (``refute_manifest.json``).
    """

    rows: tuple
    figures: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    record: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))

    def summary(self) -> pd.DataFrame:
        """Return the ``refutations.csv`` table (DESIGN.md section 4.3 columns first)."""
        return rows_frame(list(self.rows))

    @property
    def verdicts(self) -> dict[tuple[str, str], str]:
        """``(refuter, effect) -> verdict``."""
        return {(r.refuter, r.effect): r.verdict for r in self.rows}

    def to_markdown(self, digits: int = 3) -> str:
        """Render the table's main columns as Markdown (``detail`` left to the CSV)."""
        from vagg_bayes.report.render import to_markdown

        frame = self.summary()[["refuter", "effect", "estimate", "refuted_estimate",
                                "hdi_low", "hdi_high", "verdict", "p_value", "n_refits",
                                "n_failed"]]
        return to_markdown(frame, digits)

    def __str__(self) -> str:
        counts = pd.Series([r.verdict for r in self.rows]).value_counts()
        line = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("pass", "fail", "inconclusive"))
        return f"Refutation tests: {line}\n\n{self.to_markdown()}"

    def write(self, out: str | Path, *, manifest: dict | None = None) -> Path:
        """Write ``refutations.csv``, the figures and ``refute_manifest.json``."""
        from vagg_bayes.report.io import write_atomic, write_csv, write_json

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "refutations.csv", self.summary())
        write_json(out / "refute_manifest.json", {**self.record, **(manifest or {})})
        for name, draw in self.figures.items():
            try:
                write_atomic(out / name, _keep_suffix(draw, Path(name).suffix))
            except Exception as exc:  # a figure never costs the table
                warnings.warn(f"Figure {name} could not be written: {type(exc).__name__}: "
                              f"{exc}", RuntimeWarning, stacklevel=2)
        return out


def _keep_suffix(draw: Callable, suffix: str) -> Callable:
    """Wrap a figure writer to write to a temporary name ending in ``suffix``.

    matplotlib picks the format from the suffix; the file is then moved onto the
    (temporary) path that :func:`~vagg_bayes.report.io.write_atomic` gives.
    """
    import os

    def write(path: Path) -> None:
        named = path.with_name(path.name + suffix)
        try:
            draw(named)
            os.replace(named, path)
        finally:
            named.unlink(missing_ok=True)

    return write


def _prepare(target, data: pd.DataFrame, result, source: str):
    """(fitted analysis, result of the real data)."""
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.report.result import EstimateResult

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the caller reports the estimate's diagnostics
        if isinstance(target, EstimateResult):
            analysis = Analysis(target.spec, target.settings)
            analysis.fit(data, source=source, tables=False)
            return analysis, target
        if not isinstance(target, Analysis):
            raise TypeError("refute() needs an Analysis or an EstimateResult; got "
                            f"{type(target).__name__}.")
        if not target.fitted:
            return target, target.fit(data, source=source)
        if result is None:
            result = target.refit(data, source=source)  # the first seed: the fit's draws
        return target, result


def refute(target, data: pd.DataFrame, *, tests: str | Sequence[str] | None = None,
           options: Options | None = None, out: str | Path | None = None,
           result=None, resume: bool = False, progress: bool | None = None,
           source: str = "data", manifest: dict | None = None) -> RefutationResult:
    """Run refutation tests on the estimate of ``target`` on ``data``.

    Parameters
    ----------
    target : Analysis or EstimateResult
        A fitted (or not yet fitted) :class:`~vagg_bayes.analysis.Analysis`, or a result
        (an analysis of its spec and settings is fitted to ``data`` for the refits; the
        same seed gives the same draws).
    data : DataFrame
        The panel the estimate is of.
    tests : str or list of str, optional
        Names (``"placebo_permute_groups,data_subset"``); default all registered.
    options : Options, optional
        Counts, strata, seed, workers, Dask scheduler (default ``Options()``).
    out : path, optional
        Results folder: the table, figures and manifest are written there, and the
        finished refits cached in ``out/refits/``.
    result : EstimateResult, optional
        The estimate of a fitted ``target`` on ``data`` (else refitted with the first
        seed, which reproduces the fit's draws).
    resume : bool, default False
        Reuse the refits cached in ``out/refits/`` by an interrupted run with the same
        data, spec, settings and options.
    progress : bool, optional
        Progress bar (default: on a terminal).
    source : str, default "data"
        Name of the data in messages.
    manifest : dict, optional
        Added to ``refute_manifest.json`` (the command line adds its own).

    Returns
    -------
    RefutationResult

    Raises
    ------
    RefutationError, DataError
        Before any sampling, for unknown tests or unusable options.
    """
    from vagg_bayes.provenance import environment, frame_hash
    from vagg_bayes.refute.runner import RefitRunner

    options = options or Options()
    names = parse_tests(tests)
    spec = target.spec
    check_request(spec, data, names, options, source=source)
    if resume and out is None:
        raise RefutationError("resume=True needs out= (the folder whose refits/ holds the "
                              "finished refits).")
    start = time.perf_counter()
    analysis, real = _prepare(target, data, result, source)
    cache = Path(out) / "refits" if out is not None else None
    runner = RefitRunner(analysis, data, workers=options.workers, scheduler=options.scheduler,
                         cache_dir=cache, resume=resume, progress=progress)
    ctx = Context(analysis=analysis, result=real, data=data.reset_index(drop=True),
                  options=options, refits=runner)
    rows: list[Row] = []
    figures: dict[str, Callable] = {}
    notes: dict[str, Any] = {}
    timings: dict[str, float] = {}
    try:
        for i, name in enumerate(names):
            t0 = time.perf_counter()
            stage(f"refutation test {name} {i + 1}/{len(names)} ...")
            try:
                with silenced():  # the test's own fits: its progress bar says
                    outcome = REGISTRY[name](ctx)
                test_rows, test_figures, test_notes = (outcome.rows, outcome.figures,
                                                       outcome.notes)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # one broken test does not stop the others
                test_rows = [_error_row(name, real, exc)]
                test_figures, test_notes = {}, {"error": f"{type(exc).__name__}: {exc}"}
            seconds = time.perf_counter() - t0
            timings[name] = seconds
            rows.extend(r if math.isfinite(r.seconds) else dataclasses.replace(r, seconds=seconds)
                        for r in test_rows)
            figures.update(test_figures)
            if test_notes:
                notes[name] = test_notes
    finally:
        runner.close()
    env = environment()
    for package in ("distributed", "tqdm"):
        env["versions"][package] = _version(package)
    record = {
        **env,
        "command": "refute",
        "tests": names,
        "options": options.to_dict(),
        "seed": options.seed,
        "settings": analysis.settings.to_dict(),
        "spec": spec.to_dict(),
        "data_hash": frame_hash(data),
        "n_rows": int(len(data)),
        "refits": dict(runner.counts),
        "estimate_diagnostics_passed": bool(real.diagnostics.passed),
        "seconds": {"total": time.perf_counter() - start, **timings},
        "notes": _jsonable(notes),
        "rerun": ("vagg-bayes refute SPEC --data FILE --out DIR --tests "
                  f"{','.join(names)} --placebos {options.placebos} --seed {options.seed} "
                  f"--draws {analysis.settings.draws} --tune {analysis.settings.tune} "
                  f"--chains {analysis.settings.chains}"
                  + (f" --strata {options.strata}" if options.strata else "")
                  + (f" --drop-groups {','.join(options.drop_groups)}"
                     if options.drop_groups else "")),
    }
    refutation = RefutationResult(tuple(rows), figures, record)
    if out is not None:
        refutation.write(out, manifest=manifest)
    return refutation


def _jsonable(obj: Any) -> Any:
    """Convert notes to plain JSON: tables as records, arrays as lists, else text."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return _jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, pd.Series):
        return _jsonable(obj.to_dict())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _error_row(name: str, result, exc: BaseException) -> Row:
    real = real_stats(result, "total")
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return Row(name, "total", real["mean"], math.nan, math.nan, math.nan, "inconclusive",
               f"Inconclusive: the test could not run ({text[:400]}).")
