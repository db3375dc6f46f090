"""Tables of a mediation analysis: sensitivity, classical tests, effects per group.

The equations are fitted by :class:`vagg_bayes.analysis.Analysis` (their designs come
from :mod:`vagg_bayes.equations`); with independent priors and errors the joint
posterior factorises, so draw ``(chain, draw)`` of every equation together is one joint
draw (MATH.md section 2) and :func:`~vagg_bayes.effects.decompose.decompose` turns the
fits into effects. This module adds what a paper reports beside them: the sensitivity
of each path to mediator-outcome confounding, Baron-Kenny / Sobel / bootstrap tests,
and the direct and indirect effects within each group.

May import: numpy, pandas, scipy, vagg_bayes.bayes, vagg_bayes.effects, vagg_bayes.equations,
vagg_bayes.spec.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from scipy import stats

from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.effects.classical import N_BOOT, baron_kenny, classical_note
from vagg_bayes.effects.decompose import Decomposition, group_slopes
from vagg_bayes.equations import (  # noqa: F401  (re-exported: the designs live there)
    OUTCOME,
    cell_frame,
    mediator_design,
    mediator_level,
    outcome_design,
)
from vagg_bayes.effects.sensitivity import (
    LOGISTIC_SD,
    plot_sensitivity,
    sensitivity_curves,
    sensitivity_table,
)
from vagg_bayes.bayes.summary import summarize_draws
from vagg_bayes.spec import Spec

def _path_draws(outcome: EquationFit, fits: dict, dec: Decomposition) -> dict:
    """Per mediator: the draws (flattened) that the sensitivity analysis needs."""
    labels = dec.group_labels
    w = np.ones(1) if labels is None else dec.group_rows / dec.group_rows.sum()
    if outcome.family == "gaussian":
        sigma_y = outcome.sigma.reshape(-1)
    else:  # latent logistic scale of a logit model
        sigma_y = np.full(outcome.beta.shape[0] * outcome.beta.shape[1], LOGISTIC_SD)
    return {
        m: {"a": (group_slopes(f, labels, among=outcome.design) @ w).reshape(-1),
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


def mediation_tables(
    panel: pd.DataFrame,
    spec: Spec,
    fits: dict,
    dec: Decomposition,
    notes: dict,
    *,
    joint: str | None = None,
    n_boot: int = N_BOOT,
) -> tuple[dict, dict, dict]:
    """Sensitivity, classical tests and per-group effects of a fitted mediation model.

    Parameters
    ----------
    panel : DataFrame
        The validated panel the equations were fitted on.
    spec : Spec
    fits : dict of str -> EquationFit
        ``"outcome"`` then one entry per mediator, in the spec's order.
    dec : Decomposition
        The effects (:func:`~vagg_bayes.effects.decompose.decompose`).
    notes : dict
        Per mediator notes from :func:`~vagg_bayes.equations.equation_designs` (extended
        here and returned in ``meta``).
    joint : str, optional
        The mediator fitted jointly with the outcome, if any.
    n_boot : int, default 1000
        Replicates of the classical cluster bootstrap.

    Returns
    -------
    tables : dict of str -> DataFrame
        ``sensitivity``, ``classical`` and (with a group) ``group_mediation``.
    meta : dict
        Plain-JSON notes: each mediator's level and rows, ``classical_note``.
    figures : dict of str -> callable
        File name -> function writing that figure to a path (``sensitivity.png``).

    Notes
    -----
    Sensitivity: :mod:`vagg_bayes.effects.sensitivity` with ``a_k`` the sample-average
    slope and, for a Bernoulli outcome, the latent logistic scale (``s_y = pi /
    sqrt(3)``).
    """
    outcome = fits[OUTCOME]
    med_fits = {m: fits[m] for m in spec.mediators}
    notes = {m: dict(v) for m, v in notes.items()}
    paths = _path_draws(outcome, med_fits, dec)
    curves = sensitivity_curves(paths)
    scale = "outcome scale" if spec.family == "gaussian" else "latent logit scale"
    tables = {"sensitivity": sensitivity_table(paths, curves)}
    tables["sensitivity"].insert(1, "scale", scale)  # of the acme column
    tables["classical"] = classical_table(panel, spec, dec.draws, n_boot=n_boot)
    if dec.group_labels is not None:
        tables["group_mediation"] = group_mediation_table(dec, spec.group)
    city_level = [m for m in spec.mediators if notes[m]["level"] != "row"]
    skew = {m: float(stats.skew(np.ravel(dec.draws[f"indirect:{m}"])))
            for m in spec.mediators}
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
            notes[m]["path_corr"] = {"mean": float(pc.mean()), "sd": float(pc.std())}
    meta = {
        "mediators": notes,
        "sensitivity_scale": scale,
        "classical_note": classical_note(tables["classical"], city_level=city_level,
                                         skewness=skew, group=spec.group),
    }
    figures = {"sensitivity.png": functools.partial(plot_sensitivity, curves, scale=scale)}
    return tables, meta, figures
