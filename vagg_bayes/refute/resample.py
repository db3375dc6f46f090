"""Resampling refutation tests: refit on other samples of *cities* (groups), not rows.

- ``data_subset`` — ``Options.subsets`` random subsets of ``Options.subset_fraction``
  of the groups (rows of the kept groups, whole); the mean over subsets must stay within
  ``Options.tolerance`` posterior SDs of the estimate and, for an estimate whose HDI
  excludes zero, at most 10 % of the subsets may flip its sign.
- ``leave_one_group_out`` — the spec refitted without each group in turn: every group
  when there are at most ``Options.loo_max_groups``, otherwise the that many most
  influential by a classical pre-screen (:func:`influence_prescreen`: the exact
  leave-one-group-out change of the within-group OLS slope of the treatment, outcome on
  treatment and controls). Reports the largest moves and every sign flip; no single
  group may move the mean by more than ``Options.loo_tolerance`` posterior SDs or flip
  the sign of a clearly signed estimate. ``Options.drop_groups`` (``--drop-groups
  A,B``): those groups dropped together, one more row per effect
  (``leave_one_group_out[A,B]``, same rule).
- ``group_bootstrap`` — groups resampled with replacement ``Options.bootstraps`` times
  (each copy a distinct group with distinct units); the bootstrap mean must stay within
  ``Options.tolerance`` posterior SDs and the bootstrap SD of the mean within
  ``Options.bootstrap_sd_ratio`` times the posterior SD (a posterior much narrower than
  the city-to-city sampling variability understates the uncertainty). Inconclusive with
  fewer than 10 groups or 20 bootstrap draws.

Without ``[data].group`` the tests resample units (``[data].unit``) instead.

May import: numpy, pandas, the standard library, vagg_bayes.refute.*.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vagg_bayes.refute.base import Context, Outcome, Row, register
from vagg_bayes.refute.common import entity_labels, figure_writer, refit_seeds, rng_for
from vagg_bayes.refute.judge import HDI_LABEL, real_stats, stability_row, usable
from vagg_bayes.refute.placebo import skipped
from vagg_bayes.refute.runner import make_tasks
from vagg_bayes.refute.transforms import KeepGroups, ResampleGroups, plain_labels

SUBSET = "data_subset"
LOO = "leave_one_group_out"
BOOTSTRAP = "group_bootstrap"

MIN_BOOTSTRAP_GROUPS = 10
MIN_BOOTSTRAPS = 20


def resampling_entity(spec) -> str | None:
    """Return the column whose values are resampled: the group, else the unit."""
    return spec.group or spec.unit


# ------------------------------------------------------------------ data subset
@register(SUBSET)
def data_subset(ctx: Context) -> Outcome:
    """Random subsets of groups: the estimate must not move."""
    spec, data, opts = ctx.spec, ctx.data, ctx.options
    entity = resampling_entity(spec)
    if entity is None:
        return skipped(ctx, SUBSET, "the spec has neither [data].group nor [data].unit to "
                                    "draw subsets of.")
    labels = entity_labels(data, entity)
    keep = max(2, int(round(opts.subset_fraction * len(labels))))
    transforms = []
    for k in range(opts.subsets):
        chosen = rng_for(opts.seed, SUBSET, k).choice(len(labels), keep, replace=False)
        transforms.append(KeepGroups(entity, tuple(labels[int(i)] for i in np.sort(chosen))))
    tasks = make_tasks(SUBSET, refit_seeds(opts.seed, SUBSET, len(transforms)), transforms)
    summaries = ctx.refits.run(tasks, label=SUBSET)
    what = (f"{len(tasks)} random subsets of {keep} of the {len(labels)} values of "
            f"'{entity}' (all their rows)")
    rows, dists, reals = [], {}, {}
    for effect in ctx.effect_names():
        real = real_stats(ctx.result, effect)
        rows.append(stability_row(SUBSET, effect, real, summaries, tolerance=opts.tolerance,
                                  require_diagnostics=opts.require_diagnostics, what=what,
                                  max_flip_share=0.1))
        dists[effect] = [s.mean(effect) for s in summaries if s.ok]
        reals[effect] = real["mean"]
    figure = figure_writer(f"{SUBSET}: estimates on subsets of {entity}", dists, reals)
    return Outcome(rows, figures={f"refute_{SUBSET}.png": figure},
                   notes={"entity": entity, "kept": keep, "of": len(labels)})


# ------------------------------------------------------------------ leave one group out
def _regressors(data: pd.DataFrame, spec) -> pd.DataFrame:
    """Treatment and controls as numbers (categorical controls as indicators)."""
    frame = data[[spec.treatment, *spec.controls]]
    numeric = frame.select_dtypes(include="number")
    other = [c for c in frame.columns if c not in numeric.columns]
    if other:
        dummies = pd.get_dummies(frame[other].astype(str), drop_first=True, dtype=float)
        numeric = pd.concat([numeric, dummies], axis=1)
    return numeric.astype(float)


def influence_prescreen(data: pd.DataFrame, spec, entity: str) -> pd.Series:
    """Exact leave-one-group-out change of a classical slope, per group (largest first).

    The outcome and the regressors (treatment, controls) are demeaned within groups
    (and the time means removed when the spec has time), and the treatment's OLS slope
    recomputed without each group from the cross-products (no refits). A cheap ranking
    of the groups by influence, not an estimate.
    """
    X = _regressors(data, spec)
    y = pd.to_numeric(data[spec.outcome], errors="coerce").astype(float)
    keys = data[entity].map(lambda v: plain_labels([v])[0])
    frame = pd.concat([y.rename("__y"), X], axis=1)
    frame = frame - frame.groupby(keys.to_numpy()).transform("mean")
    if spec.time is not None:
        frame = frame - frame.groupby(data[spec.time].to_numpy()).transform("mean")
    Xd = frame.drop(columns="__y").to_numpy()
    keep_cols = Xd.std(axis=0) > 1e-12
    keep_cols[0] = True  # the treatment
    Xd = Xd[:, keep_cols]
    yd = frame["__y"].to_numpy()
    codes, uniques = pd.factorize(keys)
    p = Xd.shape[1]
    XtX = np.zeros((len(uniques), p, p))
    Xty = np.zeros((len(uniques), p))
    np.add.at(XtX, codes, Xd[:, :, None] * Xd[:, None, :])
    np.add.at(Xty, codes, Xd * yd[:, None])
    total_xx, total_xy = XtX.sum(0), Xty.sum(0)
    full = np.linalg.lstsq(total_xx, total_xy, rcond=None)[0][0]
    change = np.empty(len(uniques))
    for j in range(len(uniques)):
        beta = np.linalg.lstsq(total_xx - XtX[j], total_xy - Xty[j], rcond=None)[0]
        change[j] = beta[0] - full
    series = pd.Series(np.abs(change), index=list(plain_labels(uniques)))
    return series.sort_values(ascending=False, kind="stable")


@register(LOO)
def leave_one_group_out(ctx: Context) -> Outcome:
    """Refit the spec without each group: largest moves, sign flips."""
    spec, data, opts = ctx.spec, ctx.data, ctx.options
    entity = resampling_entity(spec)
    if entity is None:
        return skipped(ctx, LOO, "the spec has neither [data].group nor [data].unit to "
                                 "leave out.")
    labels = entity_labels(data, entity)
    if len(labels) <= opts.loo_max_groups:
        chosen = list(labels)
        how = f"every one of the {len(labels)} values of '{entity}' left out in turn"
        prescreen = None
    else:
        prescreen = influence_prescreen(data, spec, entity)
        chosen = list(prescreen.index[: opts.loo_max_groups])
        how = (f"the {len(chosen)} of {len(labels)} values of '{entity}' most influential by "
               "a classical pre-screen (exact leave-one-out change of the within OLS slope) "
               "left out in turn")
    transforms = [KeepGroups(entity, (g,), keep=False) for g in chosen]
    extra = None
    if opts.drop_groups:
        by_text = {str(g): g for g in labels}
        dropped = tuple(by_text[g] for g in opts.drop_groups if g in by_text)
        extra = KeepGroups(entity, dropped, keep=False)
    tasks = make_tasks(LOO, refit_seeds(opts.seed, LOO, len(transforms) + (extra is not None)),
                       [*transforms, *([extra] if extra is not None else [])])
    summaries = ctx.refits.run(tasks, label=LOO)
    single, together = summaries[: len(transforms)], summaries[len(transforms):]
    rows, dists, reals = [], {}, {}
    for effect in ctx.effect_names():
        real = real_stats(ctx.result, effect)
        rows.append(stability_row(LOO, effect, real, single, tolerance=opts.loo_tolerance,
                                  require_diagnostics=opts.require_diagnostics,
                                  what=f"Leave one out: {how}", labels=chosen, worst=True))
        dists[effect] = [s.mean(effect) for s in single if s.ok]
        reals[effect] = real["mean"]
    if extra is not None:
        name = f"{LOO}[{','.join(opts.drop_groups)}]"
        what = (f"The values {', '.join(map(str, extra.labels))} of '{entity}' dropped "
                "together")
        for effect in ctx.effect_names():
            rows.append(stability_row(name, effect, real_stats(ctx.result, effect), together,
                                      tolerance=opts.loo_tolerance,
                                      require_diagnostics=opts.require_diagnostics,
                                      what=what, labels=[", ".join(opts.drop_groups)],
                                      worst=True))
    figure = figure_writer(f"{LOO}: estimates without one {entity}", dists, reals)
    notes = {"entity": entity, "left_out": [str(g) for g in chosen]}
    if prescreen is not None:
        notes["prescreen_top"] = {str(k): float(v) for k, v in prescreen.head(20).items()}
    return Outcome(rows, figures={f"refute_{LOO}.png": figure}, notes=notes)


# ------------------------------------------------------------------ group bootstrap
def bootstrap_row(effect: str, real: dict, summaries, *, tolerance: float, sd_ratio: float,
                  require_diagnostics: bool, what: str, n_groups: int) -> Row:
    """Judge a cluster bootstrap of one effect.

    Pass when the bootstrap mean lies within ``tolerance`` SDs and the bootstrap SD within
    ``sd_ratio`` times the posterior SD; inconclusive with too few groups or draws.
    """
    ok, why, note = usable(summaries, require_diagnostics=require_diagnostics)
    means = np.array([s.mean(effect) for s in ok])
    means = means[np.isfinite(means)]
    rule = (f"Rule: pass when the bootstrap mean lies within {tolerance} posterior SD of the "
            f"estimate and the bootstrap SD of the mean is at most {sd_ratio} times the "
            f"posterior SD; fail otherwise; inconclusive with fewer than "
            f"{MIN_BOOTSTRAP_GROUPS} groups or {MIN_BOOTSTRAPS} finished bootstrap draws.")
    n_failed = sum(1 for s in summaries if not s.ok)
    if why is None and n_groups < MIN_BOOTSTRAP_GROUPS:
        why = f"only {n_groups} groups: a cluster bootstrap needs more"
    if why is None and means.size < MIN_BOOTSTRAPS:
        why = f"only {means.size} finished bootstrap draws (use more)"
    if means.size:
        centre = float(means.mean())
        low, high = np.quantile(means, [0.03, 0.97]) if means.size > 1 else (centre, centre)
    else:
        centre = low = high = math.nan
    if why is not None:
        return Row(BOOTSTRAP, effect, real["mean"], centre, float(low), float(high),
                   "inconclusive", " ".join(x for x in (f"{what}.", f"Inconclusive: {why}.",
                                                        note, rule) if x),
                   n_refits=len(summaries), n_failed=n_failed)
    sd = real["sd"]
    boot_sd = float(means.std(ddof=1))
    shift = (centre - real["mean"]) / sd
    ratio = boot_sd / sd
    flips = float(np.mean(means * real["mean"] < 0))
    seen = (f"Bootstrap mean {centre:.4g} ({shift:+.2f} posterior SD from the estimate "
            f"{real['mean']:.4g}); bootstrap SD {boot_sd:.4g} = {ratio:.2f} x the posterior "
            f"SD {sd:.4g}; central 94% of the bootstrap means [{low:.4g}, {high:.4g}]; "
            f"{flips:.0%} of them of the other sign.")
    passed = abs(shift) <= tolerance and ratio <= sd_ratio
    return Row(BOOTSTRAP, effect, real["mean"], centre, float(low), float(high),
               "pass" if passed else "fail",
               " ".join(x for x in (f"{what}.", seen, "Pass." if passed else "Fail.", note,
                                    rule) if x),
               n_refits=len(summaries), n_failed=n_failed)


@register(BOOTSTRAP)
def group_bootstrap(ctx: Context) -> Outcome:
    """Resample the groups with replacement (cluster bootstrap)."""
    spec, data, opts = ctx.spec, ctx.data, ctx.options
    entity = resampling_entity(spec)
    if entity is None:
        return skipped(ctx, BOOTSTRAP, "the spec has neither [data].group nor [data].unit "
                                       "to resample.")
    labels = entity_labels(data, entity)
    unit = spec.unit if entity == spec.group else None
    transforms = []
    for k in range(opts.bootstraps):
        draws = rng_for(opts.seed, BOOTSTRAP, k).choice(len(labels), len(labels), replace=True)
        transforms.append(ResampleGroups(entity, unit, tuple(labels[int(i)] for i in draws)))
    tasks = make_tasks(BOOTSTRAP, refit_seeds(opts.seed, BOOTSTRAP, len(transforms)),
                       transforms)
    summaries = ctx.refits.run(tasks, label=BOOTSTRAP)
    what = (f"{len(tasks)} cluster-bootstrap samples of the {len(labels)} values of "
            f"'{entity}' (drawn with replacement; each copy a distinct {entity}"
            + (f" with distinct {unit}" if unit else "") + f"); {HDI_LABEL} columns hold the "
            "central 94% of the bootstrap means")
    rows, dists, reals = [], {}, {}
    for effect in ctx.effect_names():
        real = real_stats(ctx.result, effect)
        rows.append(bootstrap_row(effect, real, summaries, tolerance=opts.tolerance,
                                  sd_ratio=opts.bootstrap_sd_ratio,
                                  require_diagnostics=opts.require_diagnostics, what=what,
                                  n_groups=len(labels)))
        dists[effect] = [s.mean(effect) for s in summaries if s.ok]
        reals[effect] = real["mean"]
    figure = figure_writer(f"{BOOTSTRAP}: estimates on resampled {entity}", dists, reals)
    return Outcome(rows, figures={f"refute_{BOOTSTRAP}.png": figure},
                   notes={"entity": entity, "groups": len(labels)})
