"""Leave-one-out on one unit for every model: pointwise log-likelihoods, PSIS, exact refits.

Two units of prediction (MATH.md section 5), the same for every model compared:

- ``"group"`` (a new city): ``log p(y_j | theta)`` with the group effects integrated
  out, the outcome equation's ``log_likelihood["y"]``; a model without a group
  (complete pooling) has independent rows, so its value for a group is the sum of its
  rows' values;
- ``"row"`` (a new firm-year in a known city): ``log p(y_i | theta, u_j)``, the
  ``log_likelihood["y_row"]`` (``"y"`` for a model without a group). Models with unit
  or group-time effects integrated out have none (their rows are not conditionally
  independent): :class:`~vagg_bayes.errors.SpecError`.

:func:`pointwise` gives a model's (chain, draw, unit) array on a common unit order,
:func:`psis_loo` its PSIS-LOO (:func:`arviz.loo`), and :func:`heldout_loglik` the log
predictive density of held-out rows under a refit's posterior (for brms-style
``reloo`` and ``kfold``: :func:`refit_units`). With mediators the log-likelihood is the
outcome equation's, given its regressors (the mediators among them), as for controls.

May import: numpy, pandas, scipy, arviz, xarray, vagg_bayes.bayes, vagg_bayes.data,
vagg_bayes.equations, vagg_bayes.errors, vagg_bayes.spec.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from vagg_bayes.errors import SpecError

OUTCOME = "outcome"
UNITS = ("group", "row")


def _flat(a):
    return None if a is None else np.asarray(a).reshape(-1, *np.asarray(a).shape[2:])


def row_labels(result) -> np.ndarray | None:
    """Return the group label of every row of a result's outcome equation, or None."""
    d = result.fits[OUTCOME].design
    return None if d.group_codes is None else np.asarray(d.group_labels)[d.group_codes]


def pointwise(result, name: str, unit: str, labels: np.ndarray | None,
              units: np.ndarray | None) -> np.ndarray:
    """Return a model's pointwise log-likelihood on the comparison's units: (C, D, U).

    Parameters
    ----------
    result : EstimateResult
    name : str
        The model's name (for messages).
    unit : {"group", "row"}
    labels : ndarray (n,) or None
        The LOO group of every row (``unit="group"``).
    units : ndarray (U,) or None
        The groups in the comparison's order (``unit="group"``).

    Raises
    ------
    SpecError
        When the model cannot provide the unit (row LOO with unit or group-time effects,
        or above the row-wise size limit; a fit without a log-likelihood).
    """
    fit = result.fits[OUTCOME]
    idata = fit.idata
    ll = getattr(idata, "log_likelihood", None)
    if ll is None or "y" not in ll:
        raise SpecError(
            f"Model '{name}' has no pointwise log-likelihood (fitted with loglik=False). "
            "Fit it with Analysis.fit (or refit(..., loglik=True)) before comparing.")
    grouped = "group" in ll["y"].dims
    if unit == "row":
        if not grouped:
            return np.asarray(ll["y"])
        if "y_row" not in ll:
            why = ll.attrs.get("y_row", "not computed")
            raise SpecError(
                f"Model '{name}' cannot give a per-row log-likelihood for row LOO ({why}). "
                "Compare on the group unit instead (--loo group, the default): every model "
                "gives the marginal log-likelihood of a held-out group.")
        return np.asarray(ll["y_row"])
    if grouped:
        if fit.design.group_labels is None:  # pragma: no cover - grouped implies labels
            raise SpecError(f"Model '{name}' has no group labels.")
        order = pd.Index([str(g) for g in np.asarray(ll["group"])]).get_indexer(
            [str(u) for u in units])
        if (order < 0).any():
            raise SpecError(f"Model '{name}' lacks some of the comparison's groups.")
        return np.asarray(ll["y"])[..., order]
    rows = np.asarray(ll["y"])  # (chain, draw, n): no group, independent rows
    codes = pd.Index(units).get_indexer(labels)
    out = np.zeros((*rows.shape[:2], len(units)))
    for j in range(len(units)):
        out[..., j] = rows[..., codes == j].sum(axis=-1)
    return out


def psis_loo(result, ll: np.ndarray, units: list[str]):
    """Compute PSIS-LOO of a (chain, draw, U) log-likelihood (:func:`arviz.loo`).

    Pointwise; ArviZ's warnings on high Pareto k are left to the caller's table.
    """
    import arviz as az
    import xarray as xr

    post = result.fits[OUTCOME].idata.posterior
    coords = {"chain": post.chain, "draw": post.draw, "unit": units}
    idata = az.InferenceData(
        posterior=post,
        log_likelihood=xr.Dataset({"y": (("chain", "draw", "unit"), ll)}, coords=coords))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(idata, var_name="y", pointwise=True)


def _heldout_design(result, panel: pd.DataFrame):
    """Build the outcome equation's design of held-out rows in the fit's encoding."""
    from vagg_bayes.bayes.design import build_design
    from vagg_bayes.equations import outcome_design

    spec = result.spec
    ref = result.fits[OUTCOME].design
    if spec.mediators:
        return outcome_design(panel, spec, reference=ref)
    return build_design(panel, spec, reference=ref)


def _data_scale(design):
    """Set ``design``'s "standardised" columns to the data-scale ones.

    The collapsed likelihoods then take data-scale coefficients and group SDs.
    """
    return dataclasses.replace(design, Z=design.X, transform=np.eye(design.p),
                               x_mean=np.zeros(design.p), x_sd=np.ones(design.p))


def group_loglik(fit, design) -> np.ndarray:
    """Marginal log-likelihood of every group of ``design`` under ``fit``'s draws: (D, J).

    Gaussian: exact (collapsed, with unit and group-time effects integrated out too);
    Bernoulli: adaptive Gauss-Hermite. A design without a group is one block.
    """
    beta, sd, corr = _flat(fit.beta), _flat(fit.group_sd), _flat(fit.group_corr)
    if fit.family == "bernoulli":
        if design.group_codes is None:
            from vagg_bayes.bayes.loglik import bernoulli_row_loglik

            return bernoulli_row_loglik(design, beta).sum(axis=1, keepdims=True)
        from vagg_bayes.bayes.loglik import bernoulli_group_loglik

        return bernoulli_group_loglik(design, beta, sd, corr)
    sigma = _flat(fit.sigma)
    d = _data_scale(design)
    if design.nested:
        from vagg_bayes.bayes.nested import (
            NestedDraws,
            group_effects_and_loglik,
            nested_statistics,
        )

        post = fit.idata.posterior
        extra = [_flat(np.asarray(post[v])) if v in post else None
                 for v in ("sd_unit", "sd_cell")]
        draws = NestedDraws(beta, sigma, *extra, tau=sd, corr=corr)
        return group_effects_and_loglik(nested_statistics(d), draws,
                                        rng=np.random.default_rng(0))[2]
    from vagg_bayes.bayes.collapsed import group_loglik as collapsed_group_loglik
    from vagg_bayes.bayes.collapsed import group_statistics

    return collapsed_group_loglik(group_statistics(d), beta, sigma, sd, corr)


def row_loglik(fit, design, rng: np.random.Generator) -> np.ndarray:
    """Per-row log-likelihood of held-out rows given their groups' effects: (D, n).

    Rows of a group the fit saw use that group's posterior effects; a group it did not
    see gets effects drawn from the population (one draw per posterior draw).
    """
    from vagg_bayes.bayes.loglik import bernoulli_row_loglik, gaussian_row_loglik

    beta = _flat(fit.beta)
    u = None
    if design.group_codes is not None and fit.group_effects is not None:
        known = _flat(fit.group_effects)  # (D, J_fit, q)
        where = pd.Index(fit.design.group_labels).get_indexer(design.group_labels)
        D, q = known.shape[0], known.shape[-1]
        u = np.empty((D, len(where), q))
        seen = where >= 0
        u[:, seen] = known[:, where[seen]]
        if (~seen).any():
            from vagg_bayes.bayes.predict import _population_draws

            fresh = _population_draws(fit, int((~seen).sum()), rng)
            u[:, ~seen] = fresh.reshape(D, -1, q)
    if fit.family == "bernoulli":
        return bernoulli_row_loglik(design, beta, u)
    return gaussian_row_loglik(design, beta, _flat(fit.sigma), u)


def heldout_loglik(result, refit, heldout: pd.DataFrame, unit: str,
                   labels: np.ndarray | None, units: np.ndarray,
                   rng: np.random.Generator) -> dict:
    """Log predictive density of each held-out unit under a refit without it.

    Parameters
    ----------
    result : EstimateResult
        The full fit (for its spec).
    refit : EstimateResult
        The fit on the data without ``heldout``.
    heldout : DataFrame
        The held-out rows (raw data), with the positions of the rows in the full data
        as index.
    unit : {"group", "row"}
    labels : ndarray (n,)
        The LOO group of every row of the full data (``unit="group"``).
    units : ndarray (U,)
        The comparison's units: groups, or row positions.

    Returns
    -------
    dict of int -> float
        Unit index -> ``log mean_s p(y_unit | theta_s)``.
    """
    from vagg_bayes.data.panel import validate_panel

    spec = result.spec
    fit = refit.fits[OUTCOME]
    panel = validate_panel(heldout.reset_index(drop=True), spec, new_rows=True)
    design = _heldout_design(refit, panel)
    positions = np.asarray(heldout.index)
    if unit == "row":
        ll = row_loglik(fit, design, rng)  # (D, n_held)
        idx = pd.Index(units).get_indexer(positions)
        return {int(i): float(logsumexp(ll[:, k]) - np.log(ll.shape[0]))
                for k, i in enumerate(idx)}
    held_groups = labels[positions]
    if spec.group is None:  # complete pooling: the group's rows are independent
        ll_rows = row_loglik(fit, design, rng)
        codes, uniques = pd.factorize(held_groups)
        ll = np.stack([ll_rows[:, codes == j].sum(axis=1) for j in range(len(uniques))], 1)
        names = list(uniques)
    else:
        ll = group_loglik(fit, design)
        names = list(design.group_labels)
    idx = pd.Index(units).get_indexer(names)
    return {int(i): float(logsumexp(ll[:, k]) - np.log(ll.shape[0]))
            for k, i in enumerate(idx)}


def refit_units(analysis, result, data: pd.DataFrame, unit: str, targets: list[int],
                labels: np.ndarray | None, units: np.ndarray, *, folds: int | None,
                seed: int = 0, cache=None, model: str = "model") -> tuple[dict, list[str]]:
    """Exact held-out log predictive densities by refitting without the units.

    ``folds=None``: one refit per unit in ``targets`` (brms's ``reloo``); else the
    units are split into ``folds`` folds (a seeded permutation) and every unit gets
    its value from the refit without its fold (brms's ``kfold``; ``targets`` ignored).
    Each refit draws its new-group effects from its own stream (``SeedSequence`` of the
    seed and the block), so a refit read back from ``cache``
    (:class:`~vagg_bayes.compare.cache.RefitCache`) leaves the others' numbers unchanged.

    Returns
    -------
    values : dict of int -> float
        Unit index -> held-out log predictive density.
    notes : list of str
        Refits whose diagnostics failed.
    """
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.provenance import run_fingerprint

    if folds is None:
        blocks = [[t] for t in targets]
    else:
        order = np.random.default_rng(seed).permutation(len(units))
        blocks = [sorted(order[k::folds].tolist()) for k in range(folds)]
        blocks = [b for b in blocks if b]
    seeds = analysis.replicate_seeds(len(blocks))
    run = run_fingerprint(analysis, data) if cache is not None else ""
    values, notes = {}, []
    for b, (block, s) in enumerate(zip(blocks, seeds, strict=True)):
        key = {"run": run, "unit": unit, "left_out": [str(units[i]) for i in block],
               "seed": [str(getattr(s, "entropy", s)), list(getattr(s, "spawn_key", ()))],
               "stream": seed}
        record = cache.load(model, b, key) if cache is not None else None
        if record is None:
            if unit == "group":
                rows = np.isin(labels, units[block])
            else:
                rows = np.zeros(len(data), dtype=bool)
                rows[np.asarray(units[block], dtype=int)] = True
            kept = data.loc[~rows]
            held = data.loc[rows]
            held.index = np.flatnonzero(rows)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                refit = analysis.refit(kept.reset_index(drop=True), seed=s, loglik=False)
            rng = np.random.default_rng(np.random.SeedSequence([seed, b]))
            got = heldout_loglik(result, refit, held, unit, labels, units, rng)
            record = {"values": {str(i): v for i, v in got.items()},
                      "passed": bool(refit.diagnostics.passed)}
            if cache is not None:
                cache.save(model, b, key, record)
        if not record["passed"]:
            notes.append(f"refit without {', '.join(str(units[i]) for i in block[:3])}"
                         f"{' ...' if len(block) > 3 else ''} failed its diagnostics")
        values.update({int(i): float(v) for i, v in record["values"].items()})
    return values, notes
