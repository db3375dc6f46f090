"""Compare fitted specifications by leave-one-out and average their effects by stacking.

:func:`compare` takes fitted results (one per spec), checks that they can be compared
(the same outcome and family, the same rows, the same LOO unit available in each),
computes every model's PSIS-LOO on that unit (:mod:`vagg_bayes.compare.loo`), replaces
the values of units with Pareto k above 0.7 by exact refits without them (brms's
``reloo``; k-fold by unit when more than ``reloo_max`` units are flagged, as brms's
``kfold``) when it has the models' :class:`~vagg_bayes.analysis.Analysis` and data,
and calls :func:`arviz.compare` for ranks, differences and stacking weights.

:meth:`Comparison.averaged_effects` mixes the models' effect draws in proportion to
their stacking weights (same columns as ``effects.csv``); :func:`compare_specs` fits
the specs first (what ``vagg-bayes compare`` runs).

May import: numpy, pandas, arviz, vagg_bayes.analysis, vagg_bayes.bayes,
vagg_bayes.compare.loo, vagg_bayes.data.panel, vagg_bayes.errors, vagg_bayes.provenance,
vagg_bayes.report, vagg_bayes.spec.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vagg_bayes.compare.loo import OUTCOME, UNITS, pointwise, psis_loo, refit_units, row_labels
from vagg_bayes.errors import DataError, SpecError

COLUMNS = ["model", "rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse",
           "warning", "n_high_k"]
K_THRESHOLD = 0.7  # Pareto k above which PSIS is unreliable (Vehtari et al. 2017)
RELOO_MAX = 10  # at most this many exact refits per model; more flagged units: k-fold
FOLDS = 10


@dataclass(frozen=True, eq=False)
class Comparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    table : DataFrame
        ``comparison.csv``: ``model, rank, elpd_loo, p_loo, elpd_diff, weight, se, dse,
        warning, n_high_k`` (rank 0 is the best, as :func:`arviz.compare`), then
        ``loo`` (the unit), ``n_units``, ``method`` (``psis``, ``psis+reloo``,
        ``kfold``), ``n_refits`` and ``note``.
    loo : dict of str -> arviz.ELPDData
        Every model's LOO after the refits (pointwise ``loo_i``).
    results : dict of str -> EstimateResult
    unit : {"group", "row"}
    group : str or None
        The LOO group column (``unit="group"``).
    notes : list of str
        Sentences on choices made (the group column taken from the other specs, ...).
    """

    table: pd.DataFrame
    loo: dict
    results: dict
    unit: str
    group: str | None
    notes: list = field(default_factory=list)

    @property
    def weights(self) -> dict[str, float]:
        """Stacking weight of every model."""
        return dict(zip(self.table["model"], self.table["weight"].astype(float), strict=True))

    def averaged_effects(self, *, seed: int = 0) -> pd.DataFrame:
        """Every effect averaged over the models by their stacking weights.

        The draws of each effect are a mixture: model ``k`` contributes a share
        ``w_k`` of them (the same draw indices for every effect of a model, so joint
        summaries stay coherent). An effect that only some models have (``indirect``
        rows, moderator levels) is averaged over those models with their weights
        renormalised; ``weight_covered`` is the total weight of the models that have
        it and ``models`` lists them. ``r_hat`` is the largest and ``ess_bulk`` the
        smallest of the contributing models' (a mixture has no chains of its own).
        """
        from vagg_bayes.bayes.summary import summarize_draws

        weights = self.weights
        names: list[str] = []
        for result in self.results.values():
            names += [e for e in result.effect_draws if e not in names]
        rng = np.random.default_rng(seed)
        draws, rows = {}, []
        flat = {m: {e: np.asarray(v).reshape(-1) for e, v in r.effect_draws.items()}
                for m, r in self.results.items()}
        picks: dict[tuple, np.ndarray] = {}
        own = {m: r.summary("effects").set_index("effect") for m, r in self.results.items()}
        for effect in names:
            have = [m for m in self.results if effect in flat[m] and weights[m] > 0]
            if not have:
                have = [m for m in self.results if effect in flat[m]]
            w = np.array([max(weights[m], 0.0) for m in have])
            w = w / w.sum() if w.sum() > 0 else np.full(len(have), 1 / len(have))
            total = min(flat[m][effect].size for m in have)
            counts = _allocate(w, total)
            parts = []
            for m, c in zip(have, counts, strict=True):
                if c == 0:
                    continue
                key = (m, c)
                if key not in picks:
                    picks[key] = rng.choice(flat[m][effect].size, size=c, replace=False)
                parts.append(flat[m][effect][picks[key]])
            mixed = rng.permutation(np.concatenate(parts))
            draws[effect] = mixed[: mixed.size // 2 * 2].reshape(2, -1)  # two "chains"
            rows.append({
                "r_hat": max(float(own[m].loc[effect, "r_hat"]) for m in have),
                "ess_bulk": min(float(own[m].loc[effect, "ess_bulk"]) for m in have),
                "weight_covered": float(sum(weights[m] for m in have)),
                "models": ";".join(have),
            })
        frame = summarize_draws(draws, "effect")  # r_hat and ess_bulk replaced below
        extra = pd.DataFrame(rows)
        frame["r_hat"] = extra["r_hat"].to_numpy()
        frame["ess_bulk"] = extra["ess_bulk"].to_numpy()
        frame["weight_covered"] = extra["weight_covered"].to_numpy()
        frame["models"] = extra["models"].to_numpy()
        return frame

    def write(self, out: str | Path, *, manifest: dict | None = None) -> Path:
        """Write ``comparison.csv``, ``averaged_effects.csv`` and ``manifest.json``.

        They appear in ``out`` together (:func:`vagg_bayes.report.io.staged_folder`).
        """
        from vagg_bayes.provenance import environment
        from vagg_bayes.report.io import staged_folder, write_csv, write_json

        out = Path(out)
        with staged_folder(out, replaces=("comparison.csv", "averaged_effects.csv",
                                          "manifest.json")) as stage:
            write_csv(stage / "comparison.csv", self.table)
            write_csv(stage / "averaged_effects.csv", self.averaged_effects())
            record = {
                **environment(),
                "command": "compare",
                "loo": self.unit,
                "loo_group": self.group,
                "notes": list(self.notes),
                "models": {m: {"spec": r.spec.to_dict(), "settings": r.settings.to_dict(),
                               "diagnostics_passed": bool(r.diagnostics.passed)}
                           for m, r in self.results.items()},
                **(manifest or {}),
                "files": ["averaged_effects.csv", "comparison.csv", "manifest.json"],
            }
            write_json(stage / "manifest.json", record)
        return out

    def __str__(self) -> str:
        from vagg_bayes.report.render import to_markdown

        head = (f"Model comparison by PSIS-LOO on the {self.unit} unit"
                + (f" ({self.group})" if self.unit == "group" else "")
                + "; weights by stacking")
        return "\n".join([head, "", to_markdown(self.table[COLUMNS + ["method"]], 3),
                          *[f"note: {n}" for n in self.notes]])


def _allocate(w: np.ndarray, total: int) -> np.ndarray:
    """Integer counts proportional to ``w`` summing to ``total`` (largest remainders)."""
    raw = w * total
    counts = np.floor(raw).astype(int)
    rest = total - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return counts


def _check_comparable(results: dict) -> None:
    """Check that every result has the same outcome, family and rows."""
    if len(results) < 2:
        raise SpecError(f"Model comparison needs at least two models; got {len(results)}. "
                        "Pass two or more specs.")
    first_name, first = next(iter(results.items()))
    y0 = first.fits[OUTCOME].design.y
    for name, r in results.items():
        if r.spec.outcome != first.spec.outcome or r.spec.family != first.spec.family:
            raise SpecError(
                f"Models '{first_name}' ({first.spec.family} model of "
                f"'{first.spec.outcome}') and '{name}' ({r.spec.family} model of "
                f"'{r.spec.outcome}') are not comparable: LOO compares the predictive "
                "densities of one outcome, and a density of a continuous outcome, a "
                "probability of a 0/1 outcome, or models of different outcomes are on "
                "different scales. Compare specs of the same outcome and family.")
        y = r.fits[OUTCOME].design.y
        if y.shape != y0.shape or not np.array_equal(y, y0):
            raise DataError(
                f"Models '{first_name}' and '{name}' were fitted to different rows "
                f"({y0.size} and {y.size} rows"
                f"{'' if y.size != y0.size else ', the outcome differs'}): LOO sums over "
                "the same observations in every model, so the data must be the same rows in "
                "the same order. Fit every spec to the same data file.")


def _loo_group(results: dict, unit: str, group: str | None, data) -> tuple:
    """Find the LOO group column, every row's group label and a note on its source."""
    if unit != "group":
        return None, None, []
    groups = {r.spec.group for r in results.values() if r.spec.group is not None}
    notes = []
    if group is None:
        if len(groups) > 1:
            raise SpecError(
                f"The specs pool over different groups ({', '.join(sorted(groups))}), so "
                "there is no one group to leave out. Pass the LOO group (--loo-group COL) "
                "or compare specs with the same [data].group.")
        if not groups:
            raise SpecError(
                "None of the specs sets [data].group, so per-group LOO has no group to "
                "leave out. Name the group column with --loo-group COL (group= in Python) "
                "or use --loo row.")
        group = groups.pop()
        if any(r.spec.group is None for r in results.values()):
            notes.append(f"LOO group '{group}' taken from the specs that pool over it; the "
                         "models without a group are scored on the same groups (sum of "
                         "their rows' log-likelihoods).")
    for name, r in results.items():
        if r.spec.group is not None and r.spec.group != group:
            raise SpecError(
                f"Model '{name}' pools over '{r.spec.group}' but the LOO group is '{group}': "
                "its group effects would not be integrated out per LOO group. Compare "
                "specs grouped by the same column, or set the LOO group to "
                f"'{r.spec.group}'.")
    labels = None
    for r in results.values():
        if r.spec.group == group:
            labels = row_labels(r)
            break
    if labels is None:
        if data is None or group not in data:
            raise SpecError(
                f"LOO group '{group}' is not in any spec, so its values must come from the "
                f"data: pass data= with a column '{group}' (the command line does).")
        labels = np.asarray(data[group])
    return group, labels, notes


def compare(results: dict, loo: str = "group", *, group: str | None = None,
            data: pd.DataFrame | None = None, analyses: dict | None = None,
            k_threshold: float = K_THRESHOLD, reloo_max: int = RELOO_MAX,
            folds: int = FOLDS, seed: int = 0, cache_dir: str | Path | None = None,
            resume: bool = False) -> Comparison:
    """Compare fitted models by PSIS-LOO on one unit; stacking weights.

    Parameters
    ----------
    results : dict of str -> EstimateResult
        The models, by name (the command line uses the spec file stems), fitted to the
        same rows.
    loo : {"group", "row"}, default "group"
        Leave out a whole group (a new city: group effects integrated out) or a row (a
        new firm-year in a known city).
    group : str, optional
        The LOO group column; default the group of the specs that have one. Needed when
        no spec has a group.
    data : DataFrame, optional
        The data the models were fitted to: its rows are refitted without high-k units,
        and it supplies ``group`` when no spec names it.
    analyses : dict of str -> Analysis, optional
        The fitted analyses behind ``results`` (same names). With ``data``, units whose
        Pareto k exceeds ``k_threshold`` are refitted exactly.
    k_threshold : float, default 0.7
    reloo_max : int, default 10
        Up to this many flagged units a model is refitted once per unit; more, and its
        whole LOO becomes ``folds``-fold cross-validation by unit.
    folds : int, default 10
    seed : int, default 0
        Seeds the folds, the refits and the mixture of :meth:`Comparison.averaged_effects`.
    cache_dir : path, optional
        Resume cache of the exact refits (the command line uses ``OUT/refits``): every
        finished refit is kept there as it ends.
    resume : bool, default False
        Read finished refits back from ``cache_dir`` instead of refitting them (an
        interrupted run continues; the numbers equal an uninterrupted run's).

    Returns
    -------
    Comparison

    Raises
    ------
    SpecError, DataError
        Models that cannot be compared (different outcomes or families, different rows,
        a model that cannot give the LOO unit).
    """
    import arviz as az

    if loo not in UNITS:
        raise SpecError(f"loo must be one of {', '.join(UNITS)}; got {loo!r}.")
    _check_comparable(results)
    if data is not None:
        data = data.reset_index(drop=True)
        n = next(iter(results.values())).fits[OUTCOME].design.n
        if len(data) != n:
            raise DataError(f"data has {len(data)} rows but the models were fitted to {n}; "
                            "pass the data the models were fitted to.")
    group, labels, notes = _loo_group(results, loo, group, data)
    for name, r in results.items():
        if r.fits[OUTCOME].design.unit_effects == "fixed":
            raise SpecError(
                f"Model '{name}' has unit_effects = \"fixed\": its likelihood is defined up "
                "to a constant per unit (a flat prior on the unit effects), so its LOO "
                "cannot be compared with other models'. Use unit_effects = \"within\".")
    if loo == "group":
        units = np.asarray(pd.unique(pd.Series(labels)))
        units = units[np.argsort(units.astype(str), kind="stable")] \
            if units.dtype == object else np.sort(units)
    else:
        units = np.arange(next(iter(results.values())).fits[OUTCOME].design.n)
    unit_names = [str(u) for u in units]
    cache = None
    if cache_dir is not None and analyses and data is not None:
        from vagg_bayes.compare.cache import RefitCache

        cache = RefitCache(cache_dir, resume=resume)
    elpds, extra = {}, {}
    for name, r in results.items():
        ll = pointwise(r, name, loo, labels, units)
        elpd = psis_loo(r, ll, unit_names)
        k = np.asarray(elpd["pareto_k"])
        high = np.flatnonzero(k > k_threshold)
        info = {"n_high_k": int(high.size), "method": "psis", "n_refits": 0, "note": ""}
        analysis = (analyses or {}).get(name)
        if high.size and analysis is not None and data is not None:
            use_folds = None if high.size <= reloo_max else min(folds, len(units))
            values, problems = refit_units(analysis, r, data, loo, high.tolist(), labels,
                                           units, folds=use_folds, seed=seed, cache=cache,
                                           model=name)
            elpd = _replace(elpd, ll, values, k_threshold, all_units=use_folds is not None)
            info["method"] = "psis+reloo" if use_folds is None else f"kfold({use_folds})"
            info["n_refits"] = int(high.size if use_folds is None else use_folds)
            info["note"] = "; ".join(problems)
        elif high.size:
            info["note"] = (f"{high.size} {loo}s with Pareto k > {k_threshold}: PSIS is "
                            "unreliable there; pass analyses= and data= for exact refits")
        elpds[name] = elpd
        extra[name] = info
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(elpds, ic="loo", method="stacking", scale="log")
    table = table.drop(columns=["scale"]).rename_axis("model").reset_index()
    table["warning"] = table["warning"].astype(bool)
    for key in ("n_high_k", "method", "n_refits", "note"):
        table[key] = [extra[m][key] for m in table["model"]]
    table.insert(len(COLUMNS), "loo", loo)
    table.insert(len(COLUMNS) + 1, "n_units", len(units))
    table = table[COLUMNS + ["loo", "n_units", "method", "n_refits", "note"]]
    if any(r.spec.mediators for r in results.values()):
        notes.append("Models with mediators are scored on the outcome equation given its "
                     "regressors (the mediators among them), as models with more controls are.")
    return Comparison(table=table, loo=elpds, results=dict(results), unit=loo, group=group,
                      notes=notes)


def _replace(elpd, ll: np.ndarray, values: dict, k_threshold: float, *, all_units: bool):
    """``elpd`` with the pointwise values of refitted units replaced (and its totals)."""
    from scipy.special import logsumexp

    elpd = elpd.copy()
    loo_i = elpd["loo_i"].copy()
    arr = np.asarray(loo_i, dtype=float).copy()
    for i, v in values.items():
        arr[i] = v
    loo_i.values = arr
    S = ll.shape[0] * ll.shape[1]
    lpd = logsumexp(ll.reshape(S, -1), axis=0) - np.log(S)
    k = np.asarray(elpd["pareto_k"], dtype=float)
    refitted = np.zeros(k.size, dtype=bool)
    refitted[list(values)] = True
    elpd["loo_i"] = loo_i
    elpd["elpd_loo"] = float(arr.sum())
    elpd["se"] = float(np.sqrt(arr.size * np.var(arr)))
    elpd["p_loo"] = float(lpd.sum() - arr.sum())
    elpd["warning"] = bool(((k > k_threshold) & ~refitted).any()) and not all_units
    return elpd


@dataclass(frozen=True)
class _SpecOnly:
    """A spec standing in for its result in the checks that need only the spec."""

    spec: object


def _check_spec_unit(name: str, spec, panel: pd.DataFrame, loo: str, source: str) -> None:
    """Check before sampling that a spec's outcome equation can give the LOO unit."""
    from vagg_bayes.equations import equation_designs

    design = equation_designs(panel, spec, source=source)[0][OUTCOME]
    if design.unit_effects == "fixed":
        raise SpecError(
            f"Spec '{name}' has unit_effects = \"fixed\": its likelihood is defined up to a "
            "constant per unit (a flat prior on the unit effects), so its LOO cannot be "
            "compared with other models'. Use unit_effects = \"within\".")
    if loo == "row" and design.nested:
        raise SpecError(
            f"Spec '{name}' has unit or group-time effects (firms seen in several years, or "
            "a city-year treatment), so its rows are not conditionally independent and it "
            "has no per-row log-likelihood for row LOO. Compare on the group unit instead "
            "(--loo group, the default).")


def compare_specs(specs: dict, data: pd.DataFrame, settings=None, *, loo: str = "group",
                  group: str | None = None, source: str = "data", seed: int = 0,
                  reloo: bool = True, cache_dir: str | Path | None = None,
                  resume: bool = False) -> Comparison:
    """Fit every spec to ``data`` and :func:`compare` them (what ``vagg-bayes compare`` runs).

    Parameters
    ----------
    specs : dict of str -> Spec
    data : DataFrame
    settings : SamplerSettings, optional
    loo, group, seed : see :func:`compare`
    source : str
        The data's name in messages.
    reloo : bool, default True
        Refit high-k units exactly.
    cache_dir, resume : see :func:`compare`

    Raises
    ------
    SpecError, DataError
        Before any sampling when the specs cannot be compared or the data cannot serve
        one of them; after the fits as :func:`compare` does.
    """
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.data.panel import validate_panel

    if loo not in UNITS:
        raise SpecError(f"loo must be one of {', '.join(UNITS)}; got {loo!r}.")
    if len(specs) < 2:
        raise SpecError(f"Model comparison needs at least two specs; got {len(specs)}.")
    (first, s0), *rest = specs.items()
    for name, spec in rest:
        if (spec.outcome, spec.family) != (s0.outcome, s0.family):
            raise SpecError(
                f"Specs '{first}' ({s0.family} model of '{s0.outcome}') and '{name}' "
                f"({spec.family} model of '{spec.outcome}') are not comparable: LOO "
                "compares predictive densities of one outcome on one scale. Compare specs "
                "of the same outcome and family.")
    if group is not None and group not in data:
        raise DataError(f"LOO group column '{group}' (--loo-group) is not in {source}. "
                        "Name one of its columns.")
    for name, spec in specs.items():  # every spec's problems before any sampling
        _check_spec_unit(name, spec, validate_panel(data, spec, source=source), loo, source)
    if loo == "group" and group is None:
        groups = {s.group for s in specs.values() if s.group is not None}
        if len(groups) != 1:
            _loo_group({n: _SpecOnly(s) for n, s in specs.items()}, loo, None, None)
    analyses, results = {}, {}
    from vagg_bayes import progress

    for k, (name, spec) in enumerate(specs.items()):
        progress.stage(f"model {name} {k + 1}/{len(specs)} ...")
        analyses[name] = Analysis(spec, settings)
        results[name] = analyses[name].fit(data, source=source, tables=False)
    progress.stage(f"leave-one-{loo}-out and stacking ...")
    return compare(results, loo, group=group, data=data,
                   analyses=analyses if reloo else None, seed=seed, cache_dir=cache_dir,
                   resume=resume)
