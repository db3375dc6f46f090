"""Joint mediation with parallel mediators: fit every equation, then effects and tables.

One Gaussian equation per mediator (mediator on treatment, controls, time and group
effects; a varying treatment slope with ``spec.varying_slope``) and the outcome
equation (outcome on treatment, every mediator and the controls; the slope of
``spec.varying_mediator`` varying by group when set), each fitted on its own: with
independent priors and errors the joint posterior factorises, so draw ``(chain,
draw)`` of every equation together is one joint draw (MATH.md section 2). The one
exception: with a Gaussian outcome, ``varying_mediator`` and ``varying_slope``, that
mediator's equation and the outcome's share one group covariance (so that ``a_j`` and
``b_j`` may covary) and are fitted together (:func:`~vagg_bayes.bayes.fit.fit_joint_pair`).

A *city-level* mediator (constant within every (group, time) cell, or within every
group when there is no time column) is fitted on one row per cell, with only the
regressors that are constant within cells (the city-level controls) plus the time
effects, not on repeated firm rows that would overstate its information.

May import: numpy, pandas, vagg_bayes.bayes, vagg_bayes.effects, vagg_bayes.spec,
vagg_bayes.report.tables (the summary rows and the HDI probability).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.bayes.design import Design, build_design
from vagg_bayes.bayes.fit import EquationFit, fit_equation, fit_joint_pair
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.effects.classical import N_BOOT, baron_kenny, classical_note
from vagg_bayes.effects.decompose import (
    Decomposition,
    decompose,
    group_slopes,
)
from vagg_bayes.effects.sensitivity import (
    LOGISTIC_SD,
    plot_sensitivity,
    sensitivity_curves,
    sensitivity_table,
)
from vagg_bayes.report.tables import summarize_draws
from vagg_bayes.spec import Spec

OUTCOME = "outcome"  # key of the outcome equation in ``fits`` (as in EstimateResult)
_SEED_STEP = 1000  # mediator k is sampled with random_seed + 1000 (k + 1)


@dataclass(frozen=True, eq=False)
class MediationAnalysis:
    """Everything :func:`fit_mediation` produces.

    Attributes
    ----------
    fits : dict of str -> EquationFit
        ``"outcome"`` then one entry per mediator, in the spec's order.
    effect_draws : dict of str -> ndarray (chain, draw)
        See :class:`~vagg_bayes.effects.decompose.Decomposition`.
    tables : dict of str -> DataFrame
        ``sensitivity``, ``classical`` and (with a group) ``group_mediation``.
    meta : dict
        Plain-JSON notes: each mediator's level and rows, ``classical_note``.
    figures : dict of str -> callable
        File name -> function writing that figure to a path (``sensitivity.png``).
    """

    fits: dict
    effect_draws: dict
    tables: dict
    meta: dict
    figures: dict[str, Callable]


def mediator_level(panel: pd.DataFrame, spec: Spec, mediator: str) -> str:
    """``"group-time"``, ``"group"`` (constant within those cells) or ``"row"``."""
    if spec.group is None:
        return "row"
    keys = [spec.group, spec.time] if spec.time else [spec.group]
    constant = panel.groupby(keys, sort=False)[mediator].nunique(dropna=False).le(1).all()
    if constant:
        return "group-time" if spec.time else "group"
    return "row"


def cell_frame(panel: pd.DataFrame, spec: Spec) -> tuple[pd.DataFrame, list[str]]:
    """One row per (group, time) cell, and the regressors constant within cells.

    Returns
    -------
    frame : DataFrame
        The first row of every cell (sorted by the cell keys).
    regressors : list of str
        ``[treatment, *controls]`` restricted to columns constant within every cell.
    """
    keys = [spec.group, spec.time] if spec.time else [spec.group]
    grouped = panel.groupby(keys, sort=True)
    candidates = [spec.treatment, *spec.controls]
    n_unique = grouped[candidates].nunique(dropna=False)
    regressors = [c for c in candidates if bool(n_unique[c].le(1).all())]
    frame = grouped.first().reset_index()
    return frame, regressors


def mediator_design(panel: pd.DataFrame, spec: Spec, mediator: str) -> tuple[Design, dict]:
    """The design of one mediator's equation and a plain-JSON note on it."""
    level = mediator_level(panel, spec, mediator)
    note = {"level": level}
    if level != "row":
        frame, regressors = cell_frame(panel, spec)
        if spec.treatment in regressors:
            design = build_design(frame, spec, response=mediator, regressors=regressors)
            dropped = [c for c in spec.controls if c not in regressors]
            note.update(rows=design.n, regressors=regressors, dropped_controls=dropped)
            return design, note
        note.update(level="row", note=f"{mediator} is constant within cells but the "
                    f"treatment is not; fitted on every row")
    design = build_design(panel, spec, response=mediator,
                          regressors=[spec.treatment, *spec.controls])
    note.update(rows=design.n, regressors=[spec.treatment, *spec.controls],
                dropped_controls=[])
    return design, note


def _joint_mediator(spec: Spec, designs: dict, y_design: Design) -> str | None:
    """The mediator fitted jointly with the outcome, or None.

    A Gaussian outcome whose ``varying_mediator`` path varies, when that mediator's
    treatment path varies too (``varying_slope``) over the same groups: then the two
    equations share one group covariance (:func:`~vagg_bayes.bayes.fit.fit_joint_pair`).
    """
    m = spec.varying_mediator
    if m is None or spec.family != "gaussian" or not spec.varying_slope:
        return None
    d = designs[m]
    if len(d.varying) != 2 or not np.array_equal(np.asarray(d.group_labels),
                                                 np.asarray(y_design.group_labels)):
        return None
    return m


def outcome_design(panel: pd.DataFrame, spec: Spec, response: str | None = None) -> Design:
    """The outcome equation's design: treatment, every mediator, the controls; the slope
    of ``spec.varying_mediator`` (else, with ``spec.varying_slope``, the treatment's)
    varying by group."""
    return build_design(panel, spec, response=response,
                        regressors=[spec.treatment, *spec.mediators, *spec.controls],
                        varying_column=spec.varying_mediator)


def _path_draws(outcome: EquationFit, fits: dict, dec: Decomposition) -> dict:
    """Per mediator: the draws (flattened) that the sensitivity analysis needs."""
    labels = dec.group_labels
    w = np.ones(1) if labels is None else dec.group_rows / dec.group_rows.sum()
    if outcome.family == "gaussian":
        sigma_y = outcome.sigma.reshape(-1)
    else:  # latent logistic scale of a logit model
        sigma_y = np.full(outcome.beta.shape[0] * outcome.beta.shape[1], LOGISTIC_SD)
    return {
        m: {"a": (group_slopes(f, labels) @ w).reshape(-1),
            "b": (group_slopes(outcome, labels, m) @ w).reshape(-1),
            "sigma_m": f.sigma.reshape(-1), "sigma_y": sigma_y}
        for m, f in fits.items()
    }


def group_mediation_table(dec: Decomposition, group: str) -> pd.DataFrame:
    """Per group: posterior of the joint indirect and the direct effect, with ranks.

    Columns ``<group>, effect, n_rows, mean, sd, hdi_low, hdi_high, prob_positive,
    r_hat, ess_bulk, rank`` (rank 1 = largest posterior mean, within each effect).
    """
    frames = []
    for effect in ("indirect", "direct"):
        arr = dec.group_draws[effect]
        draws = {str(g): arr[..., j] for j, g in enumerate(dec.group_labels)}
        frame = summarize_draws(draws, group)
        frame.insert(1, "effect", effect)
        frame.insert(2, "n_rows", dec.group_rows.astype(int))
        frame["rank"] = frame["mean"].rank(ascending=False, method="min").astype(int)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _skewness(x: np.ndarray) -> float:
    x = np.asarray(x, float).reshape(-1)
    sd = x.std()
    return float(np.mean((x - x.mean()) ** 3) / sd**3) if sd > 0 else 0.0


def classical_table(panel: pd.DataFrame, spec: Spec, effect_draws: dict, *,
                    n_boot: int = N_BOOT) -> pd.DataFrame:
    """:func:`~vagg_bayes.effects.classical.baron_kenny` with the Bayesian indirect
    effects (posterior mean and 94 % HDI) side by side."""
    table = baron_kenny(panel, spec, n_boot=n_boot)
    names = [f"indirect:{m}" for m in spec.mediators] + ["indirect"]
    bayes = summarize_draws({n: effect_draws[n] for n in names}, "effect")
    table["bayes_mean"] = bayes["mean"].to_numpy()
    table["bayes_sd"] = bayes["sd"].to_numpy()
    table["bayes_hdi_low"] = bayes["hdi_low"].to_numpy()
    table["bayes_hdi_high"] = bayes["hdi_high"].to_numpy()
    return table


def fit_mediation(
    panel: pd.DataFrame,
    spec: Spec,
    settings: SamplerSettings,
    *,
    parameterization: str = "auto",
    n_boot: int = N_BOOT,
) -> MediationAnalysis:
    """Fit the outcome and mediator equations; effects per draw, sensitivity, classical tests.

    Parameters
    ----------
    panel : DataFrame
        A validated panel (:func:`vagg_bayes.data.validate_panel`); not modified.
    spec : Spec
        With at least one mediator. ``spec.family`` is the outcome's likelihood; every
        mediator equation is Gaussian.
    settings : SamplerSettings
        Used for every equation; mediator ``k`` (0-based) gets ``random_seed +
        1000 (k + 1)`` so that the equations' chains are independent.
    parameterization : {"auto", "centered", "noncentered"}, default "auto"
        Group effects of a Bernoulli outcome equation.
    n_boot : int, default 1000
        Replicates of the classical cluster bootstrap.

    Returns
    -------
    MediationAnalysis

    Notes
    -----
    Equations (group effects ``u`` and time effects omitted)::

        M_k = a_k T + C_k g_k + e_k,      e_k ~ N(0, s_k^2)       (k = 1..K)
        Y   = c T + sum_k b_k M_k + C g + e   (Gaussian; logit link for Bernoulli)

    Effects: :func:`~vagg_bayes.effects.decompose.decompose`. Sensitivity:
    :mod:`vagg_bayes.effects.sensitivity` with ``a_k`` the sample-average slope and,
    for a Bernoulli outcome, the latent logistic scale (``s_y = pi / sqrt(3)``).
    """
    if not spec.mediators:
        raise ValueError("fit_mediation needs a spec with mediators; use estimate() instead.")
    y_design = outcome_design(panel, spec)
    designs, notes = {}, {}
    for m in spec.mediators:
        designs[m], notes[m] = mediator_design(panel, spec, m)
    joint = _joint_mediator(spec, designs, y_design)
    med_fits: dict[str, EquationFit] = {}
    if joint is not None:
        med_fits[joint], outcome = fit_joint_pair(designs[joint], y_design, settings)
    else:
        outcome = fit_equation(y_design, spec.family, settings, parameterization=parameterization)
    for k, m in enumerate(spec.mediators):
        if m == joint:
            continue
        seeded = dataclasses.replace(settings,
                                     random_seed=settings.random_seed + _SEED_STEP * (k + 1))
        med_fits[m] = fit_equation(designs[m], "gaussian", seeded)
    med_fits = {m: med_fits[m] for m in spec.mediators}  # the spec's order
    dec = decompose(outcome, med_fits)
    paths = _path_draws(outcome, med_fits, dec)
    curves = sensitivity_curves(paths)
    scale = "outcome scale" if spec.family == "gaussian" else "latent logit scale"
    tables = {"sensitivity": sensitivity_table(paths, curves)}
    tables["sensitivity"].insert(1, "scale", scale)  # of the acme column
    tables["classical"] = classical_table(panel, spec, dec.draws, n_boot=n_boot)
    if dec.group_labels is not None:
        tables["group_mediation"] = group_mediation_table(dec, spec.group)
    city_level = [m for m in spec.mediators if notes[m]["level"] != "row"]
    skew = {m: _skewness(dec.draws[f"indirect:{m}"]) for m in spec.mediators}
    if spec.varying_mediator is not None:
        m = spec.varying_mediator
        how = ("its equation and the outcome equation were fitted jointly, their group "
               "effects sharing one covariance (path_corr; corr_paths in the coefficients)"
               if joint else
               "the equations were fitted separately, so the covariance of a_j and b_j is "
               "estimated from their posterior group effects and shrinks with them")
        notes[m]["varying_path"] = (
            f"its effect on the outcome varies by {spec.group}; the average indirect effect "
            f"is the row-weighted mean of a_j b_j (it includes their covariance across "
            f"groups); {how}; the sensitivity analysis uses the average paths; the direct "
            "effect is a common slope in the outcome equation"
        )
        if joint:
            pc = np.asarray(outcome.idata.posterior["path_corr"]).reshape(-1)
            notes[m]["path_corr"] = {"mean": float(pc.mean()),
                                     "sd": float(pc.std())}
    meta = {
        "mediators": notes,
        "sensitivity_scale": scale,
        "classical_note": classical_note(tables["classical"], city_level=city_level,
                                         skewness=skew, group=spec.group),
    }
    figures = {"sensitivity.png": functools.partial(plot_sensitivity, curves, scale=scale)}
    return MediationAnalysis({OUTCOME: outcome, **med_fits}, dec.draws, tables, meta, figures)
