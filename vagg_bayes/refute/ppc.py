"""Does the fitted model reproduce the data? Posterior predictive checks and LOO-PIT.

``posterior_predictive`` draws replicated outcomes for the sample's own rows from the
posterior predictive distribution (:meth:`EstimateResult.predict`: the groups and
group-time cells use their posterior effects, every unit is drawn as a new unit) and
compares statistics of the data with their replicated distribution:

- the mean, the SD and the 5 % and 95 % quantiles of the outcome (Gaussian; the mean
  only for a Bernoulli outcome), each with its two-sided posterior predictive p-value
  ``2 min(P(T_rep >= T_obs), P(T_rep <= T_obs))``;
- the mean of every group (city): the share of groups whose two-sided p-value is below
  0.05;
- LOO-PIT calibration (``arviz.loo_pit``) where a per-row log-likelihood exists
  (``log_likelihood["y_row"]``, or ``"y"`` per row without groups; Gaussian): the
  leave-one-out probability integral transforms, PSIS-weighted, should be uniform;
  Kolmogorov-Smirnov test. A Bernoulli outcome (discrete) and models with only a
  per-group likelihood (unit or group-time effects integrated out) skip it, and say so.

**Rules** (one row per check, ``effect`` = ``<outcome>:<check>``): a statistic fails
when its p-value is below 0.05 (posterior predictive p-values are conservative, so a
failure is a real misfit); the group means fail when more than 10 % of the groups
(:data:`GROUP_SHARE`, and at least two) have p < 0.05; LOO-PIT fails when the KS
p-value is below 0.01. Checks that cannot run are inconclusive.

May import: numpy, pandas, scipy, arviz, matplotlib (lazily), vagg_bayes.refute.base.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd

from vagg_bayes.refute.base import Context, Outcome, Row, hdi, register

#: Two-sided posterior predictive p-value below which a statistic fails.
P_LIMIT = 0.05
#: Share of groups with an extreme mean above which the group means fail.
GROUP_SHARE = 0.10
#: KS p-value of the LOO-PIT values below which calibration fails.
PIT_LIMIT = 0.01
#: Most posterior draws used for the replicated data.
MAX_DRAWS = 1000


def ppp(observed: float, replicated: np.ndarray) -> float:
    """Two-sided posterior predictive p-value of a statistic."""
    replicated = np.asarray(replicated, dtype=float)
    upper = float(np.mean(replicated >= observed))
    lower = float(np.mean(replicated <= observed))
    return min(1.0, 2 * min(upper, lower))


def _statistics(family: str) -> dict:
    stats = {"mean": lambda y: np.mean(y, axis=-1)}
    if family == "gaussian":
        stats.update({
            "sd": lambda y: np.std(y, axis=-1),
            "q05": lambda y: np.quantile(y, 0.05, axis=-1),
            "q95": lambda y: np.quantile(y, 0.95, axis=-1),
        })
    return stats


def _group_means(y: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Means of ``y`` (S, n) per group (codes 0..J-1, every group present): (S, J)."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.add.reduceat(y[:, order], starts, axis=1)
    return sums / counts


def loo_pit_check(result, y: np.ndarray, y_rep: np.ndarray) -> dict:
    """LOO-PIT values and their KS test, or the reason they cannot be computed.

    ``y_rep`` (S, n) must come from the posterior draws in (chain, draw) order, so
    that draw ``s`` of the replicate and of the per-row log-likelihood match.
    """
    import arviz as az
    from scipy import stats

    fit = result.fits["outcome"]
    if fit.family != "gaussian":
        return {"reason": "Bernoulli outcome: PIT values of a discrete outcome are not uniform"}
    ll_group = fit.idata["log_likelihood"] if "log_likelihood" in fit.idata.groups() else None
    ll = None
    if ll_group is not None:
        if "y_row" in ll_group:
            ll = np.asarray(ll_group["y_row"], dtype=float)
        elif "obs" in ll_group["y"].dims:
            ll = np.asarray(ll_group["y"], dtype=float)
    if ll is None:
        return {"reason": "no per-row log-likelihood (unit or group-time effects are "
                          "integrated out: only per-group values exist)"}
    ll = ll.reshape(-1, ll.shape[-1])
    if ll.shape != y_rep.shape:
        return {"reason": f"log-likelihood {ll.shape} and replicates {y_rep.shape} differ"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_w, khat = az.psislw(-ll.T, reff=1.0)
        pit = az.loo_pit(y=np.asarray(y, dtype=float), y_hat=y_rep.T,
                         log_weights=np.asarray(log_w))
    pit = np.asarray(pit, dtype=float)
    ks = stats.kstest(pit, "uniform")
    return {"pit": pit, "ks": float(ks.statistic), "p": float(ks.pvalue),
            "n_high_k": int(np.sum(np.asarray(khat) > 0.7)), "warnings": len(caught)}


@register("posterior_predictive")
def posterior_predictive(context: Context) -> Outcome:
    """Compare the data with posterior predictive replicates (no refits).

    Rows ``<outcome>:mean``, ``:sd``, ``:q05``, ``:q95`` (Gaussian), ``:group_means``
    (with a group) and ``:loo_pit``; figures ``ppc.png``; ``notes["groups"]`` the
    per-group p-values.
    """
    start = time.perf_counter()
    result, spec = context.result, context.spec
    fit = result.fits["outcome"]
    data = context.data
    y = data[spec.outcome].to_numpy(dtype=float)
    out = spec.outcome
    rows: list[Row] = []

    def add(check, estimate, refuted, lo, hi, verdict, detail, p=math.nan):
        rows.append(Row("posterior_predictive", f"{out}:{check}", float(estimate),
                        float(refuted), float(lo), float(hi), verdict, detail, p_value=p,
                        seconds=time.perf_counter() - start))

    try:
        y_rep = np.asarray(result.predict(data, seed=context.options.seed), dtype=float)
    except ValueError as exc:
        add("all", math.nan, math.nan, math.nan, math.nan, "inconclusive",
            f"posterior predictive checks need predictions: {exc}")
        return Outcome(rows)
    S = y_rep.shape[0]
    keep = np.unique(np.linspace(0, S - 1, min(S, MAX_DRAWS)).round().astype(int))
    y_thin = y_rep[keep]

    replicated = {}
    for name, stat in _statistics(fit.family).items():
        t_obs = float(stat(y))
        t_rep = np.asarray(stat(y_thin), dtype=float)
        replicated[name] = (t_obs, t_rep)
        p = ppp(t_obs, t_rep)
        lo, hi = hdi(t_rep)
        verdict = "fail" if p < P_LIMIT else "pass"
        add(name, t_obs, t_rep.mean(), lo, hi, verdict,
            f"fails when the two-sided posterior predictive p-value of the outcome's {name} "
            f"is < {P_LIMIT}; observed {t_obs:.4g}, replicated 94 % HDI [{lo:.4g}, {hi:.4g}], "
            f"p = {p:.3f} ({len(keep)} draws)", p)

    groups = None
    if spec.group is not None and fit.design.group_codes is not None:
        codes, labels = pd.factorize(data[spec.group], sort=True)
        J = len(labels)
        obs_means = _group_means(y[None], codes)[0]
        rep_means = _group_means(y_thin, codes)
        p_groups = np.array([ppp(obs_means[j], rep_means[:, j]) for j in range(J)])
        flagged = p_groups < P_LIMIT
        share = float(flagged.mean())
        groups = pd.DataFrame({spec.group: labels, "observed_mean": obs_means,
                               "replicated_mean": rep_means.mean(axis=0), "p_value": p_groups})
        worst = groups.sort_values("p_value").head(5)
        named = ", ".join(f"{g} (p = {p:.3f})" for g, p in zip(worst[spec.group],
                                                               worst["p_value"], strict=True))
        fail = share > GROUP_SHARE and flagged.sum() >= 2
        add("group_means", share, P_LIMIT, math.nan, math.nan, "fail" if fail else "pass",
            f"fails when more than {GROUP_SHARE:.0%} of the {J} {spec.group} means (and at least "
            f"two) have a two-sided posterior predictive p < {P_LIMIT}; estimate = the share "
            f"flagged ({int(flagged.sum())} of {J}), refuted_estimate = the nominal rate; most "
            f"extreme: {named}", float(p_groups.min()))

    pit = loo_pit_check(result, y, y_rep)
    if "reason" in pit:
        add("loo_pit", math.nan, math.nan, math.nan, math.nan, "inconclusive",
            f"LOO-PIT calibration fails when its KS p-value < {PIT_LIMIT}; not run: "
            f"{pit['reason']}")
    else:
        values = pit["pit"]
        extreme = float(np.mean((values < 0.025) | (values > 0.975)))
        verdict = "fail" if pit["p"] < PIT_LIMIT else "pass"
        note = (f"; {pit['n_high_k']} rows with Pareto k > 0.7 (PSIS unreliable there)"
                if pit["n_high_k"] else "")
        add("loo_pit", pit["ks"], 0.0, float(np.quantile(values, 0.03)),
            float(np.quantile(values, 0.97)), verdict,
            f"LOO-PIT calibration (arviz.loo_pit, PSIS weights from the per-row "
            f"log-likelihood) fails when the KS test against Uniform(0, 1) has p < "
            f"{PIT_LIMIT}; estimate = KS distance, p = {pit['p']:.3g}; share of PIT values "
            f"outside [0.025, 0.975]: {extreme:.3f} (nominal 0.05){note}", pit["p"])

    figures = {"ppc.png": _figure_writer(replicated, pit.get("pit"), out)}
    notes = {"groups": groups} if groups is not None else {}
    return Outcome(rows, figures=figures, notes=notes)


def _figure_writer(replicated: dict, pit, outcome: str):
    def write(path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = len(replicated) + (pit is not None)
        fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 2.8), squeeze=False)
        for ax, (name, (t_obs, t_rep)) in zip(axes[0], replicated.items(), strict=False):
            ax.hist(t_rep, bins=30, color="0.75")
            ax.axvline(t_obs, color="C3")
            ax.set_title(f"{outcome}: {name}")
        if pit is not None:
            ax = axes[0][-1]
            ax.hist(pit, bins=20, range=(0, 1), color="0.75", density=True)
            ax.axhline(1.0, color="C3")
            ax.set_title("LOO-PIT")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write
