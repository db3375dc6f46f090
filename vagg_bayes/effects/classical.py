"""What referees expect: Baron-Kenny steps, Sobel tests and a cluster bootstrap of a*b.

Ordinary least squares with city-clustered (CR1) standard errors for each mediator
``m`` (controls ``C`` include the time indicators)::

    c   : Y ~ T + C               (total effect)
    a   : M_m ~ T + C             (treatment -> mediator)
    c', b: Y ~ T + M_1..M_K + C   (direct effect and mediator -> outcome slopes)

With repeated units (``spec.unit`` and ``spec.time`` set, some unit on more than one
row, ``spec.unit_effects != "none"``) every regression has unit (firm) and time (year)
fixed effects, as ``pyfixest.feols("Y ~ T + C | unit + time", vcov={"CRV1": group})``
would: the rows are demeaned within units and the time indicators stay explicit
regressors (Frisch-Waugh-Lovell: exact two-way fixed effects, balanced or not);
regressors constant within every unit are absorbed and dropped (the table's
``absorbed`` column names them). See :func:`within_design`. ``[model].group_means``
does not apply here: the classical regressions stay the referees' baseline.

Sobel's ``z = ab / sqrt(b^2 se_a^2 + a^2 se_b^2)``; the bootstrap resamples clusters
with replacement (whole cities: units are nested in them, so the within transformation
of a resampled panel is the resampled transformed panel). The bootstrap is fast
because every regression is a block of one cross-product matrix ``A'A`` of ``A = [X,
M_1..M_K, Y]``: the per-cluster ``A_g'A_g`` are computed once, and each replicate only
sums them with its cluster counts (one matrix product for all replicates) and solves
small systems.

May import: numpy, pandas, scipy.stats, vagg_bayes.bayes.design, vagg_bayes.errors,
vagg_bayes.spec. (The tests check the fixed-effects regressions against
``linearmodels.PanelOLS``; the module itself stays on NumPy.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from vagg_bayes.bayes.design import build_design
from vagg_bayes.errors import DataError
from vagg_bayes.spec import Spec

N_BOOT = 1000
BOOT_SEED = 20240601
_BATCH_CELLS = 20_000_000  # replicates x clusters per batch of counts
_COLLINEAR_TOL = 1e-9  # |residual| / |column| below which a column is absorbed


def _normal_p(z) -> np.ndarray:
    """Two-sided normal p-value."""
    return 2.0 * norm.sf(np.abs(np.asarray(z, dtype=float)))


def cluster_codes(panel: pd.DataFrame, spec: Spec) -> np.ndarray:
    """Cluster of each row: the group if set, else the unit, else the row itself."""
    col = spec.group or spec.unit
    if col is None:
        return np.arange(len(panel))
    return pd.factorize(panel[col], sort=True)[0].astype(np.int64)


def ols_cr1(X: np.ndarray, y: np.ndarray, clusters: np.ndarray, *, k: int | None = None):
    """OLS coefficients and cluster-robust (CR1) standard errors.

    Parameters
    ----------
    X : ndarray (n, p)
    y : ndarray (n,)
    clusters : ndarray (n,) of int
        Cluster codes 0..G-1.
    k : int, optional
        Parameters counted in the small-sample factor; default ``p``. With absorbed
        fixed effects: the ``p`` regressors plus the degrees of freedom of the
        absorbed effects that are not nested in the clusters (see :func:`within_design`).

    Returns
    -------
    coef, se : ndarray (p,)

    Notes
    -----
    ``V = G/(G-1) (N-1)/(N-k) (X'X)^-1 [sum_g X_g'e_g e_g'X_g] (X'X)^-1`` (Stata's and
    statsmodels' ``cluster`` default with ``k = p``). With one row per cluster it is HC1.
    """
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ coef
    n, p = X.shape
    k = p if k is None else k
    G = int(clusters.max()) + 1
    xe = X * e[:, None]
    scores = np.column_stack([np.bincount(clusters, weights=xe[:, j], minlength=G)
                              for j in range(p)])
    bread = np.linalg.pinv(X.T @ X)
    meat = scores.T @ scores
    factor = G / (G - 1) * (n - 1) / (n - k)
    V = factor * bread @ meat @ bread
    return coef, np.sqrt(np.clip(np.diag(V), 0, None))


def unit_effects_apply(panel: pd.DataFrame, spec: Spec) -> bool:
    """Whether the regressions get unit and time fixed effects: ``unit`` and ``time``
    set, some unit on more than one row, and ``spec.unit_effects`` not ``"none"``."""
    if spec.unit_effects == "none" or not (spec.unit and spec.time):
        return False
    return bool(panel[spec.unit].duplicated().any())


def _unit_codes(panel: pd.DataFrame, spec: Spec) -> np.ndarray:
    """Unit of every row; a unit seen in two groups counts as two units (nested)."""
    keys = [spec.group, spec.unit] if spec.group else [spec.unit]
    return panel.groupby(keys, sort=True, observed=True).ngroup().to_numpy(np.int64)


def _demean(A: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``A`` less its mean within every unit (the within transformation)."""
    counts = np.bincount(codes)
    means = np.column_stack([np.bincount(codes, weights=A[:, j], minlength=len(counts))
                             for j in range(A.shape[1])]) / counts[:, None]
    return A - means[codes]


@dataclass(frozen=True, eq=False)
class WithinDesign:
    """The Baron-Kenny arrays after the within transformation (two-way fixed effects).

    Attributes
    ----------
    X : ndarray (n, p)
        Within-unit demeaned regressors (no intercept): the treatment, the controls and
        the time indicators that the unit effects do not absorb.
    terms : tuple of str
        Names of the ``p`` columns.
    treatment_index : int
        Column of the treatment in ``X``.
    M : ndarray (n, k)
        Demeaned mediators that vary within units.
    mediators : tuple of str
        Their names (``spec.mediators`` less the absorbed ones).
    y : ndarray (n,)
        Demeaned outcome.
    clusters : ndarray (n,) of int
        Cluster codes 0..G-1 of the rows kept.
    rows : ndarray (n,) of int
        Positions in the panel of the rows kept (singleton units dropped).
    extra_k : int
        Degrees of freedom of the absorbed effects counted in the CR1 factor.
    absorbed : tuple of str
        Regressors and mediators dropped: constant within every unit, or collinear with
        the fixed effects and the regressors before them.
    """

    X: np.ndarray
    terms: tuple[str, ...]
    treatment_index: int
    M: np.ndarray
    mediators: tuple[str, ...]
    y: np.ndarray
    clusters: np.ndarray
    rows: np.ndarray
    extra_k: int
    absorbed: tuple[str, ...]


def within_design(panel: pd.DataFrame, spec: Spec) -> WithinDesign:
    """Two-way (unit and time) fixed-effects arrays for the Baron-Kenny regressions.

    Parameters
    ----------
    panel : DataFrame
        A validated panel with repeated units (:func:`unit_effects_apply`).
    spec : Spec

    Returns
    -------
    WithinDesign

    Raises
    ------
    DataError
        When the fixed effects absorb the treatment.

    Notes
    -----
    Units are ``(group, unit)`` pairs, so they are nested in the clusters. Units seen
    once (singletons) are dropped, as ``pyfixest``'s ``fixef_rm="singleton"`` does:
    their unit effect fits them exactly, so they change no coefficient, only ``N``.
    Demeaning within units and keeping the time indicators as regressors gives the
    two-way fixed-effects coefficients exactly (Frisch-Waugh-Lovell), balanced panel or
    not. Columns are checked in the order time indicators, treatment, controls,
    mediators, and a column whose demeaned values are (up to ``1e-9`` of its pooled
    variation) a combination of the columns before it is absorbed: a time-invariant
    control, or a firm's age beside the firm and year effects.

    Small-sample factor: ``pyfixest``'s (and ``fixest``'s) default ``ssc`` for
    ``feols(..., vcov={"CRV1": group})``: ``G/(G-1) (N-1)/(N-k)`` with ``k`` the
    slopes plus the levels of the time effects (``fixef_k="nonnested"``: the unit
    effects, nested in the clusters, count once instead of once per unit). With the
    time indicators explicit, ``k = p + 1`` (:attr:`WithinDesign.extra_k` is 1).
    """
    X0 = build_design(panel, spec.with_(unit_effects="none", group_means=False),
                      regressors=[spec.treatment, *spec.controls], varying_slope=False)
    units = _unit_codes(panel, spec)
    counts = np.bincount(units)
    rows = np.flatnonzero(counts[units] > 1)
    units = pd.factorize(units[rows], sort=True)[0].astype(np.int64)
    k_med = len(spec.mediators)
    raw = np.column_stack([X0.X[rows, 1:],
                           panel[list(spec.mediators)].to_numpy(float)[rows],
                           panel[spec.outcome].to_numpy(float)[rows]])
    within = _demean(raw, units)
    terms = list(X0.terms[1:]) + list(spec.mediators)
    n_time = sum(t.startswith(f"{spec.time}[") for t in X0.terms[1:])
    n_x = len(X0.terms) - 1
    # time indicators first (they are fixed effects), then treatment, controls, mediators
    order = list(range(n_x - n_time, n_x)) + list(range(n_x - n_time)) + \
        list(range(n_x, n_x + k_med))
    pooled = raw[:, order] - raw[:, order].mean(axis=0)
    r = np.abs(np.diag(np.linalg.qr(within[:, order], mode="r")))
    ref = np.linalg.norm(pooled, axis=0)
    gone = {order[j] for j in range(len(order)) if r[j] <= _COLLINEAR_TOL * max(ref[j], 1e-300)}
    if X0.treatment_index - 1 in gone:
        raise DataError(
            f"The treatment '{spec.treatment}' does not vary within units once the "
            f"{spec.unit} and {spec.time} fixed effects are in (it is constant within every "
            f"{spec.unit}, or moves only with {spec.time}), so the classical fixed-effects "
            "regressions cannot estimate its effect. Set [model].unit_effects = \"none\" "
            "for pooled regressions, or use a treatment that varies within units."
        )
    keep_x = [j for j in range(n_x) if j not in gone]
    keep_m = [j for j in range(n_x, n_x + k_med) if j not in gone]
    clusters = cluster_codes(panel.iloc[rows], spec)  # 0..G-1 over the rows kept
    return WithinDesign(
        X=within[:, keep_x],
        terms=tuple(terms[j] for j in keep_x),
        treatment_index=keep_x.index(X0.treatment_index - 1),
        M=within[:, keep_m],
        mediators=tuple(terms[j] for j in keep_m),
        y=within[:, -1],
        clusters=clusters,
        rows=rows,
        extra_k=1,
        absorbed=tuple(terms[j] for j in sorted(gone)),
    )


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
    n_boot: int = N_BOOT, seed: int = BOOT_SEED, intercept: bool = True,
) -> np.ndarray:
    """Cluster-bootstrap draws of ``a_m b_m`` for every mediator: (n_boot, k).

    ``A`` is ``[X (p columns, treatment at column `treatment`), M_1..M_k, Y]``; with
    ``intercept`` the first column of ``X`` is the intercept, without it (data demeaned
    within units, which are nested in the clusters) there is none. Columns are scaled
    internally (and centred, with an intercept) for better conditioning; a replicate
    that misses a category is solved by pseudo-inverse; the slopes are mapped back to
    the data scale. Deterministic for a given ``seed``.
    """
    if intercept:
        mean, sd = A.mean(axis=0), A.std(axis=0)
        mean[0], sd[0] = 0.0, 1.0
    else:  # centring would add an intercept the model does not have
        mean, sd = np.zeros(A.shape[1]), np.sqrt((A**2).mean(axis=0))
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
        With mediators; the controls and time indicators enter every regression, and,
        when :func:`unit_effects_apply`, unit and time fixed effects
        (:func:`within_design`).
    n_boot : int, default 1000
    seed : int, default BOOT_SEED

    Returns
    -------
    DataFrame
        One row per mediator and a last row ``indirect`` (sum of the ``a b``, bootstrap
        only): ``path, a, a_se, a_p, b, b_se, b_p, c, c_se, c_p, c_prime, c_prime_se,
        c_prime_p, ab, sobel_z, sobel_p, boot_low, boot_high, baron_kenny, clusters,
        fixed_effects, absorbed``. ``baron_kenny`` is True when ``a``, ``b`` and ``c``
        are all significant at 5 %. ``fixed_effects`` is ``"<unit> + <time>"`` or
        ``"none"``; ``absorbed`` lists the regressors and mediators the unit effects
        absorb (``"; "``-separated, empty if none); an absorbed mediator's row is NaN.
    """
    if unit_effects_apply(panel, spec):
        w = within_design(panel, spec)
        X, t, M, y, clusters = w.X, w.treatment_index, w.M, w.y, w.clusters
        mediators, k_extra, intercept = w.mediators, w.extra_k, False
        fixed, absorbed = f"{spec.unit} + {spec.time}", "; ".join(w.absorbed)
    else:
        design = build_design(panel, spec.with_(unit_effects="none", group_means=False),
                              regressors=[spec.treatment, *spec.controls],
                              varying_slope=False)
        X, t = design.X, design.treatment_index
        M = panel[list(spec.mediators)].to_numpy(float)
        y = panel[spec.outcome].to_numpy(float)
        clusters = cluster_codes(panel, spec)
        mediators, k_extra, intercept = tuple(spec.mediators), 0, True
        fixed, absorbed = "none", ""
    p, k = X.shape[1], len(mediators)
    G = int(clusters.max()) + 1
    c, c_se = ols_cr1(X, y, clusters, k=p + k_extra)
    XM = np.column_stack([X, M])
    full, full_se = ols_cr1(XM, y, clusters, k=p + k + k_extra)
    A = np.column_stack([XM, y])
    boot = bootstrap_ab(A, clusters, treatment=t, p=p, k=k, n_boot=n_boot, seed=seed,
                        intercept=intercept)
    rows = []
    for m in spec.mediators:
        if m not in mediators:
            rows.append({"path": m})
            continue
        j = mediators.index(m)
        a, a_se = ols_cr1(X, M[:, j], clusters, k=p + k_extra)
        a, a_se, b, b_se = a[t], a_se[t], full[p + j], full_se[p + j]
        z = a * b / math.sqrt(b**2 * a_se**2 + a**2 * b_se**2)
        lo, hi = np.quantile(boot[:, j], [0.025, 0.975])
        rows.append({"path": m, "a": a, "a_se": a_se, "b": b, "b_se": b_se,
                     "ab": a * b, "sobel_z": z, "boot_low": lo, "boot_high": hi})
    lo, hi = np.quantile(boot.sum(axis=1), [0.025, 0.975])
    rows.append({"path": "indirect", "ab": sum(r["ab"] for r in rows if "ab" in r),
                 "boot_low": lo, "boot_high": hi})
    frame = pd.DataFrame(rows, columns=["path", "a", "a_se", "b", "b_se", "ab", "sobel_z",
                                        "boot_low", "boot_high"])
    frame["c"], frame["c_se"] = c[t], c_se[t]
    frame["c_prime"], frame["c_prime_se"] = full[t], full_se[t]
    for name in ("a", "b", "c", "c_prime"):
        frame[f"{name}_p"] = _normal_p(frame[name] / frame[f"{name}_se"])
    frame["sobel_p"] = _normal_p(frame["sobel_z"])
    frame["baron_kenny"] = (frame[["a_p", "b_p", "c_p"]] < 0.05).all(axis=1)
    frame.loc[frame["path"] == "indirect", "baron_kenny"] = False
    frame["clusters"] = G
    frame["fixed_effects"] = fixed
    frame["absorbed"] = absorbed
    cols = ["path", "a", "a_se", "a_p", "b", "b_se", "b_p", "c", "c_se", "c_p", "c_prime",
            "c_prime_se", "c_prime_p", "ab", "sobel_z", "sobel_p", "boot_low", "boot_high",
            "baron_kenny", "clusters", "fixed_effects", "absorbed"]
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
    fixed = str(table["fixed_effects"].iloc[0]) if "fixed_effects" in table else "none"
    absorbed = str(table["absorbed"].iloc[0]) if "absorbed" in table else ""
    absorbed = "" if absorbed == "nan" else absorbed
    sobel_se = (paths["ab"] / paths["sobel_z"]).abs()
    ratio = float(np.nanmean(sobel_se / paths["bayes_sd"]))
    precision = f"the classical standard error of a*b is {ratio:.1f} times its posterior SD"
    if fixed != "none":
        precision += (f" on average, from OLS with {fixed} fixed effects (slopes identified "
                      "within units only")
        precision += f", standard errors clustered by {group})" if group else ")"
        if absorbed:
            precision += f", which absorb and drop {absorbed.replace(';', ',')}"
    elif group:
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
