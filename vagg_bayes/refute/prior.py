"""How much do the effects owe to the priors? Power-scaling, and refits under other priors.

``prior_sensitivity`` judges every effect two ways:

1. **Power-scaling** (Kallioinen et al. 2024; ``arviz.psens``), no refits: the prior
   and, separately, the likelihood are raised to a power near 1 by importance
   weighting of the existing draws, and the change in each effect's posterior is
   measured (cumulative Jensen-Shannon distance per unit of log power). The equations
   are fitted independently and their draws combined by index, so the joint log prior
   (log likelihood) is the sum over equations; the log prior covers the population
   parameters (coefficients, residual and group SDs), not the group effects, whose
   prior is part of the hierarchy. Values >= 0.05 flag an influential component
   (priorsense's threshold): prior >= 0.05 with likelihood >= 0.05 is a prior-data
   conflict, prior >= 0.05 with likelihood < 0.05 a prior that dominates a weak
   likelihood.
2. **Refits** under wider and narrower priors: every default prior scale (coefficient
   SDs, group-effect SD scales, the residual SD's prior mean) times 2 and times 0.5
   (``Analysis(..., prior_scale=s)``); each effect's move in posterior SDs of the
   original fit, ``|mean_s - mean| / sd``.

**Rule.** An effect fails when its prior power-scaling sensitivity is >= 0.05 or a
refit moves it by >= 0.5 posterior SD (:data:`MOVE_LIMIT`); it passes when neither
happens; it is inconclusive when neither check could run (no log prior, refits
failed).

May import: numpy, pandas, arviz, xarray, vagg_bayes.analysis (lazily),
vagg_bayes.refute.base.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd

from vagg_bayes.refute.base import Context, Outcome, Row, hdi, register

#: Power-scaling sensitivity at or above this flags an influential prior (priorsense).
PSENS_LIMIT = 0.05
#: A refit under another prior that moves an effect by this many posterior SDs fails it.
MOVE_LIMIT = 0.5
#: Prior scale factors of the refits.
SCALES = (0.5, 2.0)


def _joint_component(fits, group: str, variable: str):
    """Sum over equations of one InferenceData group's per-draw values (chain, draw).

    Equations fitted jointly carry the same joint array: it is counted once. Returns
    None when an equation lacks the group.
    """
    total, seen = None, []
    for fit in fits:
        idata = fit.idata
        if group not in idata.groups():
            return None
        ds = idata[group]
        if variable not in ds:
            return None
        arr = np.asarray(ds[variable], dtype=float)
        if any(arr.shape == s.shape and np.array_equal(arr, s) for s in seen):
            continue
        seen.append(arr)
        per_draw = arr.reshape(arr.shape[0], arr.shape[1], -1).sum(axis=-1)
        total = per_draw if total is None else total + per_draw
    return total


def power_scaling(result, *, coefficients: bool = False) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity (``arviz.psens``) of every effect.

    Parameters
    ----------
    result : EstimateResult
    coefficients : bool, default False
        Also every coefficient of every equation (rows ``<equation>:<term>``).

    Returns
    -------
    DataFrame
        ``quantity, prior, likelihood, diagnosis``; NaN where the component is missing.
    """
    import arviz as az
    import xarray as xr

    fits = list(result.fits.values())
    draws = {name: np.asarray(v, dtype=float) for name, v in result.effect_draws.items()}
    if coefficients:
        for eq, fit in result.fits.items():
            label = result.spec.outcome if eq == "outcome" else eq
            for k, term in enumerate(fit.design.terms):
                draws[f"{label}:{term}"] = fit.beta[..., k]
    shape = next(iter(draws.values())).shape
    post = xr.Dataset({name: (("chain", "draw"), v.reshape(shape)) for name, v in draws.items()})
    log_prior = _joint_component(fits, "log_prior", "prior")
    log_lik = _joint_component(fits, "log_likelihood", "y")
    groups = {"posterior": post}
    if log_prior is not None:
        groups["log_prior"] = xr.Dataset({"prior": (("chain", "draw"), log_prior)})
    if log_lik is not None:
        groups["log_likelihood"] = xr.Dataset({"y": (("chain", "draw", "one"),
                                                     log_lik[..., None])})
    idata = az.InferenceData(**groups)
    out = pd.DataFrame({"quantity": list(draws)})
    for component, present in (("prior", log_prior), ("likelihood", log_lik)):
        if present is None:
            out[component] = math.nan
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sens = az.psens(idata, component=component)
        out[component] = [float(sens[name]) for name in draws]
    out["diagnosis"] = [_diagnosis(p, lik)
                        for p, lik in zip(out["prior"], out["likelihood"], strict=True)]
    return out


def _diagnosis(prior: float, likelihood: float) -> str:
    if math.isnan(prior):
        return "no log prior"
    if prior < PSENS_LIMIT:
        return "-"
    if math.isnan(likelihood) or likelihood >= PSENS_LIMIT:
        return "prior-data conflict"
    return "strong prior / weak likelihood"


def prior_refits(analysis, data: pd.DataFrame, scales=SCALES) -> dict:
    """Fit the spec again with every prior scale multiplied by each of ``scales``.

    The scales multiply the analysis' own ``prior_scale`` (1 for the defaults). Returns
    scale -> (EstimateResult, convergence warnings) or (None, error message). A fresh
    :class:`~vagg_bayes.analysis.Analysis` is built per scale (its priors differ, so the
    first fit's compiled model cannot be reused).
    """
    from vagg_bayes.analysis import Analysis

    out = {}
    for s in scales:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fitted = Analysis(analysis.spec, analysis.settings,
                                  parameterization=analysis.parameterization,
                                  prior_scale=getattr(analysis, "prior_scale", 1.0) * s
                                  ).fit(data, tables=False)
            out[s] = (fitted, [str(w.message).split("\n")[0] for w in caught
                               if w.category.__name__ == "ConvergenceWarning"])
        except Exception as exc:  # noqa: BLE001 - one failed refit must not end the test
            out[s] = (None, f"{type(exc).__name__}: {exc}")
    return out


@register("prior_sensitivity")
def prior_sensitivity(context: Context) -> Outcome:
    """Judge every effect's dependence on the priors (power-scaling and two refits).

    ``notes["power_scaling"]`` holds the sensitivity of every effect and coefficient,
    ``notes["refits"]`` each effect's mean under every prior scale.
    """
    start = time.perf_counter()
    result = context.result
    sens = power_scaling(result, coefficients=True).set_index("quantity")
    refits = prior_refits(context.analysis, context.data)
    records, rows = [], []
    n_ok = sum(r is not None for r, _ in refits.values())
    failed = [f"x{s:g}: {msg}" for s, (r, msg) in refits.items() if r is None]
    unconverged = [f"x{s:g}" for s, (r, msg) in refits.items() if r is not None and msg]
    seconds = time.perf_counter() - start
    rule = (f"fails when prior power-scaling sensitivity (arviz.psens, joint log prior of all "
            f"equations) >= {PSENS_LIMIT} or a refit with every prior scale x0.5 or x2 moves the "
            f"effect by >= {MOVE_LIMIT} posterior SD")
    for name, draws in result.effect_draws.items():
        draws = np.asarray(draws, dtype=float).ravel()
        mean, sd = float(draws.mean()), float(draws.std(ddof=1))
        p_sens = float(sens.loc[name, "prior"])
        l_sens = float(sens.loc[name, "likelihood"])
        moves, worst = {}, None
        for s, (fitted, _) in refits.items():
            if fitted is None or name not in fitted.effect_draws:
                continue
            other = np.asarray(fitted.effect_draws[name], dtype=float).ravel()
            move = abs(float(other.mean()) - mean) / sd if sd > 0 else math.inf
            moves[s] = move
            records.append({"effect": name, "prior_scale": s, "mean": float(other.mean()),
                            "sd": float(other.std(ddof=1)), "move_sd": move})
            if worst is None or move > moves[worst[0]]:
                worst = (s, other)
        parts = []
        if not math.isnan(p_sens):
            parts.append(f"psens prior {p_sens:.3f}, likelihood {l_sens:.3f} "
                         f"({sens.loc[name, 'diagnosis']})")
        else:
            parts.append("no log prior: power-scaling not run")
        if moves:
            parts.append("refits: " + ", ".join(f"x{s:g} moves {m:.2f} SD"
                                                 for s, m in moves.items()))
        if failed:
            parts.append("refits that failed: " + "; ".join(failed))
        if unconverged:
            parts.append("refits with convergence warnings: " + ", ".join(unconverged))
        flags = []
        if not math.isnan(p_sens) and p_sens >= PSENS_LIMIT:
            flags.append("prior influential by power-scaling")
        if moves and max(moves.values()) >= MOVE_LIMIT:
            flags.append("moves under another prior")
        if flags:
            verdict = "fail"
        elif math.isnan(p_sens) and not moves:
            verdict = "inconclusive"
        else:
            verdict = "pass"
        refuted, lo, hi = math.nan, math.nan, math.nan
        if worst is not None:
            refuted = float(worst[1].mean())
            lo, hi = hdi(worst[1])
        detail = f"{rule}. {'; '.join(parts)}" + (f" -> {', '.join(flags)}" if flags else "")
        rows.append(Row("prior_sensitivity", name, mean, refuted, lo, hi, verdict, detail,
                        n_refits=n_ok, n_failed=len(failed), seconds=seconds))
    return Outcome(rows, notes={"power_scaling": sens.reset_index(),
                                "refits": pd.DataFrame.from_records(records)})
