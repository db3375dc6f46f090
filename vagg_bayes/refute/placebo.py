"""Placebo-type refutation tests: the treatment's role removed, the effect must vanish.

The treatment reassigned, led, its mediators permuted or its effect removed from a
simulated outcome: the placebo effect must vanish (or the real one stand out).

- ``placebo_permute_groups`` — randomization inference as Stata's ``ritest``: the
  treatment is permuted at the level where it is assigned (a city-year treatment: each
  city's whole series is given to another city, aligned on years), optionally only
  within strata (``Options.strata``, a column constant within cities such as province),
  ``Options.placebos`` times, or every possible assignment when there are at most that
  many (exact). The p-value of the real estimate among the placebo estimates, with its
  Monte Carlo SE (:func:`~vagg_bayes.refute.judge.randomization_row`).
- ``placebo_time`` — the treatment led by ``Options.lead`` periods within each city (or
  firm) is added as the treatment, with the real treatment kept as a control; the
  future must not explain the present: every effect of the lead must cover zero. Rows
  without a future value are dropped; a control that takes a single value on the rows
  left (a shock indicator of the last period only) is dropped from the refit, and the
  row's ``detail`` says so.
- ``placebo_mediator`` — every mediator permuted within its level: a city-level
  mediator (constant within city-year cells) by giving each city another city's series;
  a firm-level mediator across the firms of the same city-year cell (its city-year
  means, the treatment's path to it, are kept; only its link to each firm's outcome is
  broken; within cities when most cells hold a single firm). Every indirect effect must
  cover zero.
- ``dummy_outcome`` — the outcome replaced by one simulated from the fitted model with
  the treatment's effect removed: posterior predictive draws (one posterior draw per
  replicate; group, group-year and firm effects drawn anew from their fitted
  distributions; residual noise) with the treatment and every mediator held at their
  sample means, so that the simulated outcome depends on the controls, the time effects
  and the random effects only. Every effect must cover zero.
- ``negative_control_outcome`` — the spec refitted with ``[variables] negative_control``
  as the outcome; every effect must cover zero. Without one in the spec the row says so
  (inconclusive, not a failure).
- ``random_common_cause`` — a standard-normal column added as a control; the mean of
  every effect must stay within ``Options.tolerance`` posterior SDs.

May import: numpy, pandas, the standard library, vagg_bayes.refute.*; lazily
vagg_bayes.bayes.predict, vagg_bayes.equations, vagg_bayes.data.panel.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from vagg_bayes.refute.base import Context, Outcome, Row, register
from vagg_bayes.refute.common import (
    PLAN,
    assignment_level,
    entity_labels,
    figure_writer,
    refit_seeds,
    rng_for,
    seed_for,
    strata_of,
)
from vagg_bayes.refute.judge import randomization_row, real_stats, stability_row, zero_row
from vagg_bayes.refute.runner import RefitTask, Variant, make_tasks
from vagg_bayes.refute.transforms import (
    AddLead,
    AddNormal,
    Chain,
    PermuteRows,
    ReassignSeries,
    SetColumn,
    seed_key,
    unused_name,
)

PERMUTE = "placebo_permute_groups"
TIME = "placebo_time"
MEDIATOR = "placebo_mediator"
DUMMY = "dummy_outcome"
NEGATIVE = "negative_control_outcome"
RANDOM_CAUSE = "random_common_cause"


def skipped(ctx: Context, refuter: str, why: str, effects=None) -> Outcome:
    """Return one inconclusive row per effect saying why the test did not run."""
    rows = []
    for effect in effects or ctx.effect_names():
        real = real_stats(ctx.result, effect)
        rows.append(Row(refuter, effect, real["mean"], math.nan, math.nan, math.nan,
                        "inconclusive", f"Skipped: {why}"))
    return Outcome(rows, notes={"skipped": why})


# ------------------------------------------------------------------ permutations
def assignment_space(labels, strata: dict | None) -> int:
    """Count the distinct assignments: the product of ``n_s!`` over strata."""
    if strata is None:
        return math.factorial(len(labels))
    sizes = pd.Series([strata[g] for g in labels]).value_counts()
    return math.prod(math.factorial(int(n)) for n in sizes)


def _blocks(labels, strata: dict | None) -> list[list]:
    if strata is None:
        return [list(labels)]
    blocks: dict = {}
    for g in labels:
        blocks.setdefault(strata[g], []).append(g)
    return [blocks[k] for k in sorted(blocks, key=str)]


def permutation_plan(labels, strata: dict | None, n: int, *, seed: int,
                     name: str = PERMUTE) -> tuple[list[tuple], bool, int]:
    """Donor maps of the placebo assignments.

    Returns ``(maps, exact, space)``: each map a tuple of ``(label, donor)`` pairs;
    ``exact`` when every assignment but the real one is listed (``space - 1 <= n``);
    ``space`` the number of possible assignments. Random maps: replicate ``k``
    permutes each stratum with its own generator (:func:`~common.rng_for`).
    """
    space = assignment_space(labels, strata)
    blocks = _blocks(labels, strata)
    if space - 1 <= n:
        maps = []
        for combo in itertools.product(*(itertools.permutations(b) for b in blocks)):
            pairs = tuple((g, d) for block, perm in zip(blocks, combo, strict=True)
                          for g, d in zip(block, perm, strict=True))
            if any(g != d for g, d in pairs):
                maps.append(pairs)
        return maps, True, space
    maps = []
    for k in range(n):
        rng = rng_for(seed, name, k)
        pairs = []
        for block in blocks:
            perm = rng.permutation(len(block))
            pairs.extend((g, block[int(i)]) for g, i in zip(block, perm, strict=True))
        maps.append(tuple(pairs))
    return maps, False, space


@register(PERMUTE)
def placebo_permute_groups(ctx: Context) -> Outcome:
    """Randomization inference: the treatment reassigned where it is assigned."""
    spec, data, opts = ctx.spec, ctx.data, ctx.options
    level = assignment_level(data, spec, spec.treatment)
    if level.kind == "row":
        transforms = [PermuteRows(spec.treatment, (spec.time,) if spec.time else (),
                                  seed_key(seed_for(opts.seed, PERMUTE, PLAN, k)))
                      for k in range(opts.placebos)]
        exact, space = False, math.inf
        what = (f"Placebo: {level.describe(spec.treatment)}; rows permuted"
                + (f" within each {spec.time}" if spec.time else "")
                + f", {opts.placebos} times")
        if opts.strata:
            what += " (strata ignored at the row level)"
    else:
        labels = entity_labels(data, level.entity)
        strata = strata_of(data, level.entity, opts.strata)
        maps, exact, space = permutation_plan(labels, strata, opts.placebos, seed=opts.seed)
        transforms = [ReassignSeries(spec.treatment, level.entity, level.time, m)
                      for m in maps]
        how = (f"all {space - 1} other assignments (exact enumeration)" if exact else
               f"{len(maps)} random permutations")
        within = f" within strata of '{opts.strata}'" if opts.strata else ""
        what = (f"Placebo: {level.describe(spec.treatment)}; each {level.entity}'s series "
                f"given to another {level.entity}{within}: {how}")
    tasks = make_tasks(PERMUTE, refit_seeds(opts.seed, PERMUTE, len(transforms)), transforms)
    summaries = ctx.refits.run(tasks, label=PERMUTE) if tasks else []
    rows, dists, reals = [], {}, {}
    for effect in ctx.effect_names():
        real = real_stats(ctx.result, effect)
        rows.append(randomization_row(
            PERMUTE, effect, real, summaries, exact=exact,
            n_space=space if exact else len(tasks), alpha=opts.alpha,
            require_diagnostics=opts.require_diagnostics, what=what))
        dists[effect] = [s.mean(effect) for s in summaries if s.ok]
        reals[effect] = real["mean"]
    figure = figure_writer(f"{PERMUTE}: placebo estimates against the real one", dists, reals)
    return Outcome(rows, figures={f"refute_{PERMUTE}.png": figure},
                   notes={"level": level.kind, "entity": level.entity, "exact": exact,
                          "assignments": space if exact else None,
                          "placebos": len(tasks)})


# ------------------------------------------------------------------ placebo time
def _variant_spec(spec, **changes):
    return spec.with_(graph=None, negative_control=None, **changes)


def _single_value(data: pd.DataFrame, column: str) -> bool:
    """``column`` takes at most one distinct value (missing values counted) in ``data``."""
    return column in data and data[column].nunique(dropna=False) < 2


def _quoted(names) -> str:
    return ", ".join(f"'{n}'" for n in names)


@register(TIME)
def placebo_time(ctx: Context) -> Outcome:
    """Lead the treatment by ``lead`` periods, the real treatment held as a control."""
    spec, data, opts = ctx.spec, ctx.data, ctx.options
    if spec.time is None:
        return skipped(ctx, TIME, "the spec has no [data].time, so the treatment has no "
                                  "future to lead it by.")
    level = assignment_level(data, spec, spec.treatment)
    entity = level.entity if level.kind != "row" else spec.unit
    if entity is None:
        return skipped(ctx, TIME, "neither [data].group nor [data].unit is set, so there "
                                  "is no series to lead the treatment within.")
    lead_col = unused_name(data, f"{spec.treatment}_lead{opts.lead}")
    prime = AddLead(spec.treatment, lead_col, entity, spec.time, opts.lead)
    led = prime(data)
    moderators = [m for m in getattr(spec, "moderators", ()) or () if _single_value(led, m)]
    if moderators:
        return skipped(ctx, TIME, f"the moderator(s) {_quoted(moderators)} take a single "
                                  f"value on the rows that have a value {opts.lead} "
                                  "period(s) later, so the effects by moderator level "
                                  "cannot be refitted there; a longer panel is needed.")
    dropped = [c for c in spec.controls if _single_value(led, c)]
    controls = tuple(c for c in spec.controls if c not in dropped)
    variant_spec = _variant_spec(spec, treatment=lead_col,
                                 controls=(*controls, spec.treatment))
    variant = Variant(f"{TIME}:lead{opts.lead}", variant_spec, prime)
    task = RefitTask(TIME, 0, seed_key(seed_for(opts.seed, TIME, 1, 0)), None, variant,
                     keep_draws=True)
    summaries = ctx.refits.run([task], label=TIME)
    n_rows = summaries[0].n_rows
    what = (f"Placebo: '{spec.treatment}' led by {opts.lead} period(s) within each "
            f"{entity} ('{lead_col}') as the treatment, the real '{spec.treatment}' as a "
            f"control; {n_rows or 'the'} rows with a future value")
    if dropped:
        what += (f"; control(s) {_quoted(dropped)} dropped from the placebo refit: each "
                 "takes a single value on these rows (it varies only in the periods the "
                 "lead drops), so it is collinear with the intercept there")
    rows = [zero_row(TIME, effect, real_stats(ctx.result, effect), summaries,
                     require_diagnostics=opts.require_diagnostics, what=what)
            for effect in ctx.effect_names()]
    return Outcome(rows, notes={"entity": entity, "lead": opts.lead, "rows": n_rows,
                                "dropped_controls": dropped})


# ------------------------------------------------------------------ placebo mediator
def _cell_keys(data: pd.DataFrame, spec) -> tuple[tuple, str]:
    """Cells within which a firm-level mediator is permuted, and their description."""
    if spec.group is None:
        keys = (spec.time,) if spec.time else ()
        return keys, (f"within each {spec.time}" if spec.time else "across all rows")
    if spec.time is None:
        return (spec.group,), f"within each {spec.group}"
    sizes = data.groupby([spec.group, spec.time], sort=False)[spec.group].transform("size")
    if float((sizes >= 2).mean()) >= 0.5:
        return (spec.group, spec.time), f"across the rows of each {spec.group}-{spec.time} cell"
    return (spec.group,), (f"within each {spec.group} (most {spec.group}-{spec.time} cells "
                           "hold one row)")


def mediator_placebo(data: pd.DataFrame, spec, *, seed: int, index: int) -> tuple[Chain, list]:
    """Return the transform permuting every mediator (replicate ``index``), and what it does."""
    parts, said = [], []
    for j, m in enumerate(spec.mediators):
        level = assignment_level(data, spec, m)
        stream = PLAN + 2 + j
        if level.kind == "group":
            labels = entity_labels(data, level.entity)
            rng = np.random.default_rng(seed_for(seed, MEDIATOR, stream, index))
            perm = rng.permutation(len(labels))
            donors = tuple((g, labels[int(i)]) for g, i in zip(labels, perm, strict=True))
            parts.append(ReassignSeries(m, level.entity, level.time, donors))
            said.append(f"'{m}' (city-level: each {level.entity}'s series given to another "
                        f"{level.entity})")
        else:
            keys, where = _cell_keys(data, spec)
            parts.append(PermuteRows(m, keys, seed_key(seed_for(seed, MEDIATOR, stream,
                                                                index))))
            said.append(f"'{m}' (permuted {where})")
    return Chain(tuple(parts)), said


@register(MEDIATOR)
def placebo_mediator(ctx: Context) -> Outcome:
    """Every mediator permuted within its level: its indirect effect must vanish."""
    spec, data, opts = ctx.spec, ctx.data, ctx.options
    indirect = [e for e in ctx.effect_names() if e.startswith("indirect")]
    if not spec.mediators or not indirect:
        return skipped(ctx, MEDIATOR, "the spec has no mediators.", effects=["total"])
    transforms, said = [], []
    for k in range(opts.replicates):
        chain, said = mediator_placebo(data, spec, seed=opts.seed, index=k)
        transforms.append(chain)
    tasks = make_tasks(MEDIATOR, refit_seeds(opts.seed, MEDIATOR, len(transforms)),
                       transforms, keep_draws=True)
    summaries = ctx.refits.run(tasks, label=MEDIATOR)
    what = (f"Placebo: {'; '.join(said)}; {len(tasks)} replicate(s); only the indirect "
            "effects are judged (the direct effect absorbs the permuted paths)")
    rows = [zero_row(MEDIATOR, effect, real_stats(ctx.result, effect), summaries,
                     require_diagnostics=opts.require_diagnostics, what=what)
            for effect in indirect]
    return Outcome(rows, notes={"permuted": said})


# ------------------------------------------------------------------ dummy outcome
def _chunks(data: pd.DataFrame, spec, rows_per_chunk: int) -> list[np.ndarray]:
    """Split the rows into chunks that keep every group (else every unit) whole.

    Each chunk draws its own new group, group-time and unit effects.
    """
    n = len(data)
    entity = spec.group or spec.unit
    if entity is None:
        return [np.arange(i, min(n, i + rows_per_chunk)) for i in range(0, n, rows_per_chunk)]
    codes = pd.factorize(data[entity])[0]
    per_entity = np.bincount(codes)
    per_chunk = max(1, int(rows_per_chunk / max(1.0, per_entity.mean())))
    chunk_of = codes // per_chunk
    order = np.argsort(chunk_of, kind="stable")
    bounds = np.flatnonzero(np.diff(chunk_of[order])) + 1
    return np.split(order, bounds)


def _predict_outcome(result, rows: pd.DataFrame, seed) -> np.ndarray:
    """Posterior predictive draws (S, n) of the outcome equation for ``rows``.

    As :meth:`EstimateResult.predict`, but building the outcome equation's design only
    (with every mediator held constant, a mediator's own design would take another
    shape; it is not needed here).
    """
    from vagg_bayes.bayes.predict import predict_draws
    from vagg_bayes.data.panel import validate_panel
    from vagg_bayes.equations import OUTCOME, outcome_design

    fit = result.fits[OUTCOME]
    if fit.design.unit_effects == "fixed":
        raise ValueError("unit_effects = \"fixed\" has no distribution of unit effects to "
                         "simulate an outcome from; use \"within\" (the default).")
    panel = validate_panel(rows, result.spec, source="simulated rows", new_rows=True)
    design = outcome_design(panel, result.spec, reference=fit.design)
    return predict_draws(fit, design, rng=np.random.default_rng(seed))


def null_outcomes(result, data: pd.DataFrame, spec, *, seed: int, n: int) -> list[np.ndarray]:
    """``n`` outcomes simulated from the fitted model with the treatment's effect removed.

    Posterior predictive draws (as :meth:`EstimateResult.predict`: residual noise
    included) with the treatment and every mediator held at their sample means, and
    every group, group-time cell and unit treated as new: their effects are drawn from
    the fitted population distributions, not taken from the posterior of the real data
    (those absorb part of the treatment's effect in every draw whose slope is below the
    posterior mean, and would carry it into the simulated outcome). Replicate ``k`` uses
    one posterior draw picked by its own generator.
    """
    data = data.reset_index(drop=True)
    held = data.assign(**{c: float(pd.to_numeric(data[c]).mean())
                          for c in (spec.treatment, *spec.mediators)})
    if spec.group is not None:
        held[spec.group] = held[spec.group].astype(str) + "~simulated"
    S = int(np.asarray(result.effect_draws["total"]).size)
    picks = [int(rng_for(seed, DUMMY, k).integers(S)) for k in range(n)]
    out = [np.empty(len(data)) for _ in range(n)]
    rows_per_chunk = max(200, int(4_000_000 / max(1, S)))
    for c, rows in enumerate(_chunks(data, spec, rows_per_chunk)):
        draws = _predict_outcome(result, held.iloc[rows], seed_for(seed, DUMMY, PLAN + 1, c))
        for k, d in enumerate(picks):
            out[k][rows] = draws[d]
    if spec.family == "bernoulli":
        out = [np.rint(y).astype(int) for y in out]
    return out


@register(DUMMY)
def dummy_outcome(ctx: Context) -> Outcome:
    """Simulate the outcome without the treatment's effect: every effect must vanish."""
    spec, data, opts = ctx.spec, ctx.data, ctx.options
    outcomes = null_outcomes(ctx.result, data, spec, seed=opts.seed, n=opts.replicates)
    transforms = [SetColumn(spec.outcome, y) for y in outcomes]
    tasks = make_tasks(DUMMY, refit_seeds(opts.seed, DUMMY, len(transforms)), transforms,
                       keep_draws=True)
    summaries = ctx.refits.run(tasks, label=DUMMY)
    held = ", ".join([spec.treatment, *spec.mediators])
    what = (f"Placebo: '{spec.outcome}' simulated from the fitted model (one posterior draw "
            f"per replicate; new group, group-time and unit effects from their fitted "
            f"distributions; residual noise) with {held} held at the sample mean; "
            f"{len(tasks)} replicate(s)")
    rows = [zero_row(DUMMY, effect, real_stats(ctx.result, effect), summaries,
                     require_diagnostics=opts.require_diagnostics, what=what)
            for effect in ctx.effect_names()]
    return Outcome(rows)


# ------------------------------------------------------------------ negative control
@register(NEGATIVE)
def negative_control_outcome(ctx: Context) -> Outcome:
    """Refit the spec to its negative-control outcome: every effect must vanish."""
    spec, opts = ctx.spec, ctx.options
    nc = getattr(spec, "negative_control", None)
    if nc is None:
        return skipped(ctx, NEGATIVE, "the spec names no negative-control outcome; add "
                                      "[variables] negative_control = \"column\" (an outcome "
                                      "the treatment cannot affect).")
    variant = Variant(f"{NEGATIVE}:{nc}", _variant_spec(spec, outcome=nc), Chain(()))
    task = RefitTask(NEGATIVE, 0, seed_key(seed_for(opts.seed, NEGATIVE, 1, 0)), None,
                     variant, keep_draws=True)
    summaries = ctx.refits.run([task], label=NEGATIVE)
    what = f"Negative control: the spec fitted with '{nc}' as the outcome"
    rows = [zero_row(NEGATIVE, effect, real_stats(ctx.result, effect), summaries,
                     require_diagnostics=opts.require_diagnostics, what=what)
            for effect in ctx.effect_names()]
    return Outcome(rows, notes={"negative_control": nc})


# ------------------------------------------------------------------ random common cause
@register(RANDOM_CAUSE)
def random_common_cause(ctx: Context) -> Outcome:
    """Add a random normal control: the estimate must not move."""
    spec, data, opts = ctx.spec, ctx.data, ctx.options
    column = unused_name(data, "random_common_cause")
    seeds = [seed_key(seed_for(opts.seed, RANDOM_CAUSE, PLAN, k))
             for k in range(opts.replicates)]
    variant = Variant(f"{RANDOM_CAUSE}:{column}",
                      _variant_spec(spec, controls=(*spec.controls, column)),
                      AddNormal(column, seeds[0]))
    transforms = [None] + [AddNormal(column, s) for s in seeds[1:]]
    tasks = make_tasks(RANDOM_CAUSE, refit_seeds(opts.seed, RANDOM_CAUSE, len(transforms)),
                       transforms, variant=variant)
    summaries = ctx.refits.run(tasks, label=RANDOM_CAUSE)
    what = (f"A standard-normal column '{column}' added as a control; {len(tasks)} "
            "replicate(s)")
    rows = [stability_row(RANDOM_CAUSE, effect, real_stats(ctx.result, effect), summaries,
                          tolerance=opts.tolerance,
                          require_diagnostics=opts.require_diagnostics, what=what)
            for effect in ctx.effect_names()]
    return Outcome(rows)
