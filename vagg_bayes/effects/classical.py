"""What referees expect: Baron-Kenny steps, Sobel tests and a cluster bootstrap of a*b.

Ordinary least squares with city-clustered (CR1) standard errors, in NumPy only, for
each mediator ``m`` (controls ``C`` include the time indicators)::

    c   : Y ~ T + C               (total effect)
    a   : M_m ~ T + C             (treatment -> mediator)
    c', b: Y ~ T + M_1..M_K + C   (direct effect and mediator -> outcome slopes)

Sobel's ``z = ab / sqrt(b^2 se_a^2 + a^2 se_b^2)``; the bootstrap resamples clusters
with replacement. The bootstrap is fast because every regression is a block of one
cross-product matrix ``A'A`` of ``A = [X, M_1..M_K, Y]``: the per-cluster ``A_g'A_g``
are computed once, and each replicate only sums them with its cluster counts (one
matrix product for all replicates) and solves small systems.

May import: numpy, pandas, vagg_bayes.bayes.design, vagg_bayes.spec.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vagg_bayes.bayes.design import build_design
from vagg_bayes.spec import Spec

N_BOOT = 1000
BOOT_SEED = 20240601
_BATCH_CELLS = 20_000_000  # replicates x clusters per batch of counts


def _normal_p(z: np.ndarray) -> np.ndarray:
    """Two-sided normal p-value."""
    return np.array([math.erfc(abs(v) / math.sqrt(2.0)) for v in np.ravel(z)]).reshape(
        np.shape(z)
    )


def cluster_codes(panel: pd.DataFrame, spec: Spec) -> np.ndarray:
    """Cluster of each row: the group if set, else the unit, else the row itself."""
    col = spec.group or spec.unit
    if col is None:
        return np.arange(len(panel))
    return pd.factorize(panel[col], sort=True)[0].astype(np.int64)


def ols_cr1(X: np.ndarray, y: np.ndarray, clusters: np.ndarray):
    """OLS coefficients and cluster-robust (CR1) standard errors.

    Returns
    -------
    coef, se : ndarray (p,)

    Notes
    -----
    ``V = G/(G-1) (N-1)/(N-p) (X'X)^-1 [sum_g X_g'e_g e_g'X_g] (X'X)^-1`` (Stata's and
    statsmodels' ``cluster`` default). With one row per cluster it is HC1.
    """
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ coef
    n, p = X.shape
    G = int(clusters.max()) + 1
    xe = X * e[:, None]
    scores = np.column_stack([np.bincount(clusters, weights=xe[:, j], minlength=G)
                              for j in range(p)])
    bread = np.linalg.pinv(X.T @ X)
    meat = scores.T @ scores
    factor = G / (G - 1) * (n - 1) / (n - p)
    V = factor * bread @ meat @ bread
    return coef, np.sqrt(np.clip(np.diag(V), 0, None))


def cluster_crossproducts(A: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """``A_g'A_g`` for every cluster ``g``, flattened: (G, q*q)."""
    G = int(clusters.max()) + 1
    q = A.shape[1]
    order = np.argsort(clusters, kind="stable")
    As, cs = A[order], clusters[order]
    starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
    out = np.zeros((G, q * q))
    step = max(1, 2_000_000 // (q * q))
    for lo in range(0, len(starts), step):  # chunks of whole clusters bound the memory
        st = starts[lo : lo + step]
        end = starts[lo + step] if lo + step < len(starts) else len(As)
        block = As[st[0] : end]
        outer = (block[:, :, None] * block[:, None, :]).reshape(len(block), q * q)
        out[cs[st]] = np.add.reduceat(outer, st - st[0], axis=0)
    return out


def bootstrap_ab(
    A: np.ndarray, clusters: np.ndarray, *, treatment: int, p: int, k: int,
    n_boot: int = N_BOOT, seed: int = BOOT_SEED,
) -> np.ndarray:
    """Cluster-bootstrap draws of ``a_m b_m`` for every mediator: (n_boot, k).

    ``A`` is ``[X (p columns, intercept first, treatment at column `treatment`),
    M_1..M_k, Y]``. Columns are standardised internally (better conditioning; a
    replicate that misses a category is solved by pseudo-inverse), the slopes mapped
    back to the data scale. Deterministic for a given ``seed``.
    """
    mean, sd = A.mean(axis=0), A.std(axis=0)
    mean[0], sd[0] = 0.0, 1.0
    sd[sd == 0] = 1.0
    S = cluster_crossproducts((A - mean) / sd, clusters)
    G, q = S.shape[0], A.shape[1]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, k))
    batch = max(1, _BATCH_CELLS // G)
    for start in range(0, n_boot, batch):
        bb = min(batch, n_boot - start)
        draws = rng.integers(0, G, size=(bb, G))
        counts = np.bincount((draws + G * np.arange(bb)[:, None]).ravel(),
                             minlength=bb * G).reshape(bb, G).astype(float)
        AA = (counts @ S).reshape(bb, q, q)
        a_coef = np.linalg.pinv(AA[:, :p, :p]) @ AA[:, :p, p : p + k]  # (bb, p, k)
        y_coef = np.linalg.pinv(AA[:, : p + k, : p + k]) @ AA[:, : p + k, -1:]
        a = a_coef[:, treatment, :] * sd[p : p + k] / sd[treatment]
        b = y_coef[:, p : p + k, 0] * sd[-1] / sd[p : p + k]
        out[start : start + bb] = a * b
    return out


def baron_kenny(
    panel: pd.DataFrame, spec: Spec, *, n_boot: int = N_BOOT, seed: int = BOOT_SEED
) -> pd.DataFrame:
    """Stepwise OLS, Sobel test and cluster bootstrap of each path's ``a b``.

    Parameters
    ----------
    panel : DataFrame
        A validated panel.
    spec : Spec
        With mediators; the controls and time indicators enter every regression.
    n_boot : int, default 1000
    seed : int, default BOOT_SEED

    Returns
    -------
    DataFrame
        One row per mediator and a last row ``indirect`` (sum of the ``a b``, bootstrap
        only): ``path, a, a_se, a_p, b, b_se, b_p, c, c_se, c_p, c_prime, c_prime_se,
        c_prime_p, ab, sobel_z, sobel_p, boot_low, boot_high, baron_kenny, clusters``.
        ``baron_kenny`` is True when ``a``, ``b`` and ``c`` are all significant at 5 %.
    """
    design = build_design(panel, spec, regressors=[spec.treatment, *spec.controls],
                          varying_slope=False)
    X, t = design.X, design.treatment_index
    p, k = X.shape[1], len(spec.mediators)
    M = panel[list(spec.mediators)].to_numpy(float)
    y = panel[spec.outcome].to_numpy(float)
    clusters = cluster_codes(panel, spec)
    G = int(clusters.max()) + 1
    c, c_se = ols_cr1(X, y, clusters)
    XM = np.column_stack([X, M])
    full, full_se = ols_cr1(XM, y, clusters)
    A = np.column_stack([XM, y])
    boot = bootstrap_ab(A, clusters, treatment=t, p=p, k=k, n_boot=n_boot, seed=seed)
    rows = []
    for j, m in enumerate(spec.mediators):
        a, a_se = ols_cr1(X, M[:, j], clusters)
        a, a_se, b, b_se = a[t], a_se[t], full[p + j], full_se[p + j]
        z = a * b / math.sqrt(b**2 * a_se**2 + a**2 * b_se**2)
        lo, hi = np.quantile(boot[:, j], [0.025, 0.975])
        rows.append({"path": m, "a": a, "a_se": a_se, "b": b, "b_se": b_se,
                     "ab": a * b, "sobel_z": z, "boot_low": lo, "boot_high": hi})
    lo, hi = np.quantile(boot.sum(axis=1), [0.025, 0.975])
    rows.append({"path": "indirect", "ab": sum(r["ab"] for r in rows),
                 "boot_low": lo, "boot_high": hi})
    frame = pd.DataFrame(rows)
    frame["c"], frame["c_se"] = c[t], c_se[t]
    frame["c_prime"], frame["c_prime_se"] = full[t], full_se[t]
    for name in ("a", "b", "c", "c_prime"):
        frame[f"{name}_p"] = _normal_p(frame[name] / frame[f"{name}_se"])
    frame["sobel_p"] = _normal_p(frame["sobel_z"])
    frame["baron_kenny"] = (frame[["a_p", "b_p", "c_p"]] < 0.05).all(axis=1)
    frame.loc[frame["path"] == "indirect", "baron_kenny"] = False
    frame["clusters"] = G
    cols = ["path", "a", "a_se", "a_p", "b", "b_se", "b_p", "c", "c_se", "c_p", "c_prime",
            "c_prime_se", "c_prime_p", "ab", "sobel_z", "sobel_p", "boot_low", "boot_high",
            "baron_kenny", "clusters"]
    return frame[cols]


def classical_note(
    table: pd.DataFrame, *, city_level: list[str], skewness: dict, group: str | None = None
) -> str:
    """One sentence on where the classical and the Bayesian indirect effects differ, and why.

    Parameters
    ----------
    table : DataFrame
        :func:`baron_kenny`'s rows with the Bayesian ``bayes_sd``, ``bayes_hdi_low`` and
        ``bayes_hdi_high`` of each path's indirect effect added.
    city_level : list of str
        Mediators measured once per city(-year).
    skewness : dict of str -> float
        Skewness of each path's posterior of ``a b``.
    group : str, optional
        The grouping column (the Bayesian equations have group effects).
    """
    paths = table[table["path"] != "indirect"]
    bayes_nonzero = (paths["bayes_hdi_low"] > 0) | (paths["bayes_hdi_high"] < 0)
    sobel_nonzero = paths["sobel_p"] < 0.05
    boot_nonzero = (paths["boot_low"] > 0) | (paths["boot_high"] < 0)
    differ = (bayes_nonzero != sobel_nonzero) | (bayes_nonzero != boot_nonzero)
    if differ.any():
        head = ("The classical tests (Sobel, cluster bootstrap) and the Bayesian 94% HDI "
                f"disagree on whether the indirect effect is zero for "
                f"{', '.join(paths['path'][differ])}")
    else:
        head = ("The classical tests (Sobel, cluster bootstrap) and the Bayesian 94% HDI "
                "agree on which indirect effects are distinguishable from zero")
    sobel_se = (paths["ab"] / paths["sobel_z"]).abs()
    ratio = float(np.nanmean(sobel_se / paths["bayes_sd"]))
    precision = f"the classical standard error of a*b is {ratio:.1f} times its posterior SD"
    if group:
        precision += (f" on average, since pooled OLS leaves the {group} effects in the error "
                      "term (only clustering its standard errors) where the Bayesian equations "
                      "model them")
    else:
        precision += " on average, from the same regressions and weak priors"
    worst = max(skewness, key=lambda m: abs(skewness[m])) if skewness else None
    skew = (f" (skewness {skewness[worst]:+.2f} for {worst})" if worst is not None else "")
    city = ""
    if city_level:
        G = int(table["clusters"].iloc[0])
        city = (f"; the city-level mediators ({', '.join(city_level)}) repeat one value on "
                f"every firm row, so their classical standard errors rest on {G} clusters, "
                "while their Bayesian equations use one row per city-year")
    return (f"{head}: {precision}; the Sobel test takes a*b to be normal whereas its "
            f"posterior, a product, is skewed{skew}{city}; and both approaches assume no "
            "mediator-outcome confounding, which the sensitivity table probes.")
