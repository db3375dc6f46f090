r"""Counterfactual-path resilience of firms, with posterior uncertainty (closed form).

What R's ERRI package computes for regions (a no-shock path from the pre-shock trend,
then the shock's depth, cumulative loss and recovery time against it), here for every
firm at once, with the trend fitted by a conjugate Bayesian regression per firm so that
each measure comes with a posterior (exact draws; no MCMC).

**The model.** For firm :math:`i` and shock year :math:`s`, on log exports
:math:`y_t = \ln X_{it}` of the pre-shock years (:math:`t \le s - 1`; the last
``pre_years`` of them when given) with time :math:`\tau = t - (s - 1)` (0 in the year
before the shock):

.. math::

    y_t &= a + b\,\tau + \varepsilon_t, \qquad \varepsilon_t \sim N(0, \sigma^2) \\
    (a, b) \mid \sigma^2 &\sim N\big(0,\ \sigma^2 \operatorname{diag}(\kappa_a^2,
        \kappa_b^2)\big), \qquad \sigma^2 \sim \mathrm{InvGamma}(\alpha_0, \beta_0)

(:class:`TrendPrior`; defaults :math:`\kappa_a = 1000`, :math:`\kappa_b = 10`: flat on the
level and the trend in units of :math:`\sigma`; :math:`\alpha_0 = 2`,
:math:`\beta_0 = 0.1`: prior mean of :math:`\sigma^2` 0.1, a residual SD near 0.3 log
points, infinite prior variance). The posterior is normal-inverse-gamma: with
:math:`X` the design :math:`[1, \tau]`, :math:`\Lambda_0 = \operatorname{diag}
(\kappa_a^{-2}, \kappa_b^{-2})`,

.. math::

    V_n = (\Lambda_0 + X'X)^{-1}, \quad m_n = V_n X'y, \quad
    \alpha_n = \alpha_0 + n/2, \quad \beta_n = \beta_0 + \tfrac12 (y'y - m_n' X'y)

and draws are exact: :math:`\sigma^2 \sim \mathrm{InvGamma}(\alpha_n, \beta_n)`, then
:math:`(a, b) \sim N(m_n, \sigma^2 V_n)`. Each draw gives a counterfactual path
:math:`y^0_\tau = a + b\tau` for the post-shock years :math:`\tau = 1, \dots, H` (the
shock year and after; the trend itself, without year-to-year noise).

**The measures** (ERRI's definitions, on the log scale): the adverse gap
:math:`G_\tau = (y^0_\tau - y_\tau) / c` with :math:`c` the ``scale`` (1 by default, so
gaps are in log points: 0.1 is about 10 % below the counterfactual; ``"sd"``: the SD of
the pre-shock log exports; ``"mean"``: the absolute mean of the pre-shock log exports).
*Depth* is the largest positive gap (0 if exports never fall below the path),
*cumulative loss* the sum of the positive gaps over the window, *recovery time* the
number of years after the shock year until the gap is at most ``epsilon`` for
``consecutive`` years in a row (0: the gap never exceeded ``epsilon`` at the shock;
censored, NaN in the draws, when that never happens within the window).

**What is undefined** (NaN and a ``note``): fewer than ``min_pre`` pre-shock years with
positive exports, zero exports in the pre-shock window (log of zero), no record from the
shock year on, a missing year or zero exports inside the post-shock window (a firm that
stops exporting has an infinite loss on the log scale: see ``survived`` in
:func:`~vagg_bayes.measures.firm_resilience` for exits).

May import: numpy, pandas, vagg_bayes.errors, vagg_bayes.measures.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.errors import DataError
from vagg_bayes.measures.resilience import _check_shocks, _notes, _prepare, _Records

__all__ = ["TrendPrior", "counterfactual_resilience", "gap_measures"]

SCALES = ("none", "sd", "mean")
_CHUNK_ELEMENTS = 4_000_000  # firms x draws x years per batch (about 32 MB per array)

_REASONS = {
    1: "fewer than min_pre pre-shock years with a record",
    2: "zero exports in the pre-shock window (log of zero)",
    3: "no record from the shock year on",
    4: "a year without a record inside the post-shock window",
    5: "zero exports inside the post-shock window (log of zero; see survived in "
       "firm_resilience)",
    6: "the pre-shock scale is zero or undefined (constant exports, or one pre-shock year "
       "with scale='sd'; use scale='none')",
}


@dataclass(frozen=True)
class TrendPrior:
    r"""Conjugate normal-inverse-gamma prior of the pre-shock trend (log exports).

    Parameters
    ----------
    level_sd : float, default 1000.0
        :math:`\kappa_a`: prior SD of the level in the year before the shock, in units of
        :math:`\sigma` (prior mean 0). Large: flat.
    slope_sd : float, default 10.0
        :math:`\kappa_b`: prior SD of the yearly trend in units of :math:`\sigma` (prior
        mean 0). Large: flat.
    sigma_shape, sigma_scale : float, default 2.0 and 0.1
        :math:`\alpha_0, \beta_0` of the inverse-gamma prior of the residual variance
        :math:`\sigma^2` (prior mean :math:`\beta_0 / (\alpha_0 - 1)` = 0.1). This is the
        part that matters with few pre-shock years.
    """

    level_sd: float = 1000.0
    slope_sd: float = 10.0
    sigma_shape: float = 2.0
    sigma_scale: float = 0.1

    def check(self) -> TrendPrior:
        """Raise ``DataError`` unless every value is a finite positive number."""
        for name in ("level_sd", "slope_sd", "sigma_shape", "sigma_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) \
                    or v <= 0:
                raise DataError(
                    f"counterfactual_resilience: TrendPrior.{name}={v!r} must be a finite "
                    "number > 0."
                )
        return self


def gap_measures(
    counterfactual: np.ndarray,
    actual: np.ndarray,
    valid: np.ndarray,
    *,
    scale: np.ndarray | float = 1.0,
    epsilon: float = 0.05,
    consecutive: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Depth, cumulative loss and recovery time of gaps against a counterfactual path.

    Parameters
    ----------
    counterfactual : numpy.ndarray
        Counterfactual values, shape ``(..., H)`` (the last axis is the post-shock years,
        the shock year first).
    actual : numpy.ndarray
        Observed values, broadcastable to ``counterfactual``.
    valid : numpy.ndarray of bool
        Which years are inside the window, broadcastable to ``counterfactual``.
    scale : float or numpy.ndarray
        Divides the gaps; broadcastable to ``counterfactual[..., 0]``.
    epsilon : float, default 0.05
        Recovery tolerance in gap units.
    consecutive : int, default 2
        Years in a row with a gap of at most ``epsilon`` that declare recovery.

    Returns
    -------
    depth, loss, recovery_time : numpy.ndarray
        Shape ``counterfactual.shape[:-1]``: :math:`\max(0, \max_\tau G_\tau)`,
        :math:`\sum_\tau \max(G_\tau, 0)` over the valid years, and the first
        :math:`k \ge 0` (years after the shock year) from which ``consecutive`` valid
        years have :math:`G \le \epsilon` (NaN when there is none: censored).
    """
    scale = np.asarray(scale, dtype=float)[..., None]
    actual = np.where(valid, actual, np.nan)  # outside the window: no gap
    gap = (counterfactual - actual) / scale
    return _gap_stats(np.moveaxis(gap, -1, 0), epsilon, consecutive)


def _gap_stats(gap: np.ndarray, epsilon: float, consecutive: int):
    """Depth, loss and recovery time of gaps (NaN outside the window); years on axis 0.

    A loop over the few years, each step on a whole (firms x draws) slice: reductions
    over a short last axis are several times slower in NumPy.
    """
    H = gap.shape[0]
    depth = np.zeros(gap.shape[1:])
    loss = np.zeros(gap.shape[1:])
    recovery = np.full(gap.shape[1:], np.nan)
    recent: list[np.ndarray] = []  # "within epsilon" of the last `consecutive` years
    for h in range(H):
        g = gap[h]
        np.fmax(depth, g, out=depth)  # fmax skips NaN
        loss += np.fmax(g, 0.0)
        recent.append(g <= epsilon)  # NaN -> False
        if len(recent) > consecutive:
            recent.pop(0)
        if len(recent) == consecutive:
            run = np.logical_and.reduce(recent) & np.isnan(recovery)
            recovery[run] = h - consecutive + 1
    return depth, loss, recovery


def _hdi(draws: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval of each row (as ArviZ computes it); NaN rows -> NaN."""
    s = np.sort(draws, axis=1)
    n = s.shape[1]
    k = int(np.floor(prob * n))
    if k < 1 or n - k < 1:
        return s[:, 0], s[:, -1]
    widths = s[:, k:] - s[:, : n - k]
    j = np.argmin(np.where(np.isnan(widths), np.inf, widths), axis=1)
    rows = np.arange(len(s))
    return s[rows, j], s[rows, j + k]


def counterfactual_resilience(
    df: pd.DataFrame,
    *,
    firm: Hashable,
    year: Hashable,
    exports: Hashable,
    shock_years: int | Iterable[int],
    pre_years: int | None = None,
    min_pre: int = 3,
    horizon: int | None = None,
    draws: int = 1000,
    seed: int = 0,
    prior: TrendPrior | None = None,
    scale: str = "none",
    epsilon: float = 0.05,
    consecutive: int = 2,
    hdi_prob: float = 0.94,
    return_draws: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, object]]:
    r"""Depth, cumulative loss and recovery time of each firm against its pre-shock trend.

    See the module docstring for the model, its prior and the measures.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per firm-year with firm, year and export value (>= 0).
    firm, year, exports : hashable
        The names of those columns.
    shock_years : int or iterable of int
        Shock years within the records' years.
    pre_years : int, optional
        Fit the trend on the last ``pre_years`` years before the shock (default: all).
    min_pre : int, default 3
        Fewest pre-shock years with positive exports to fit a trend (at least 1).
    horizon : int, optional
        Years in the post-shock window, the shock year first (default: up to the firm's
        last record).
    draws : int, default 1000
        Posterior draws per firm and shock.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same data and seed give the same
        draws.
    prior : TrendPrior, optional
        The prior (default ``TrendPrior()``).
    scale : {"none", "sd", "mean"}, default "none"
        Gap scaling (ERRI's ``scale``): none (log points), the SD of the pre-shock log
        exports, or their absolute mean.
    epsilon : float, default 0.05
        Recovery tolerance in gap units (5 log points by default).
    consecutive : int, default 2
        Years in a row within ``epsilon`` that declare recovery.
    hdi_prob : float, default 0.94
        Mass of the highest-density intervals.
    return_draws : bool, default False
        Also return the draws (see Returns).

    Returns
    -------
    summary : pandas.DataFrame
        One row per firm and shock (firms with a record in the year before the shock,
        the shock year or the year after), sorted by firm then shock year: ``firm``,
        ``year`` (the caller's names; the shock year), ``n_pre`` (pre-shock years used),
        ``window`` (post-shock years measured), ``trend_level`` and ``trend_slope``
        (posterior means of :math:`a`, :math:`b`), ``depth``, ``loss`` (posterior means)
        with ``_sd``, ``_hdi_low``, ``_hdi_high``; ``recovery_time`` (posterior median,
        censored draws counted as infinite; NaN when more than half are censored),
        ``prob_recovered`` (share of draws that recover in the window);
        ``depth_point``, ``loss_point``, ``recovery_time_point`` (the measures of the
        posterior-mean path) and ``note``.
    draws : dict
        Only with ``return_draws=True``: arrays of shape ``(rows, draws)`` aligned with
        ``summary``, keys ``depth``, ``loss``, ``recovery_time``, ``level``, ``slope``,
        ``sigma``; and ``posterior``, a DataFrame of the closed-form posterior of each
        row (``m_level, m_slope, v_level, v_cov, v_slope, shape, scale``: :math:`m_n`,
        :math:`V_n`, :math:`\alpha_n`, :math:`\beta_n`).

    Raises
    ------
    DataError
        Bad records (as :func:`~vagg_bayes.measures.firm_resilience`, without the
        industry) or arguments out of range.
    """
    func = "counterfactual_resilience"
    prior = (prior or TrendPrior()).check()
    if scale not in SCALES:
        raise DataError(f"{func}: scale={scale!r} must be one of {', '.join(SCALES)}.")
    for name, value, least in (("min_pre", min_pre, 1), ("draws", draws, 1),
                               ("consecutive", consecutive, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise DataError(f"{func}: {name}={value!r} must be an integer >= {least}.")
    for name, value in (("pre_years", pre_years), ("horizon", horizon)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, int | np.integer) or value < 1):
            raise DataError(f"{func}: {name}={value!r} must be None or an integer >= 1.")
    if not (isinstance(epsilon, int | float) and np.isfinite(epsilon) and epsilon >= 0):
        raise DataError(f"{func}: epsilon={epsilon!r} must be a finite number >= 0.")
    if not 0 < hdi_prob < 1:
        raise DataError(f"{func}: hdi_prob={hdi_prob!r} must be between 0 and 1.")
    rec = _prepare(df, firm=firm, industry=None, year=year, exports=exports, func=func)
    shocks = _check_shocks(shock_years, rec, year, func)
    rng = np.random.default_rng(seed)
    parts, extra = [], []
    for s in shocks:
        frame, more = _one_shock(rec, s, prior=prior, pre_years=pre_years, min_pre=min_pre,
                                 horizon=horizon, draws=draws, rng=rng, scale=scale,
                                 epsilon=epsilon, consecutive=consecutive,
                                 hdi_prob=hdi_prob, keep=return_draws)
        frame.insert(1, year, s)
        parts.append(frame)
        extra.append(more)
    out = pd.concat(parts, ignore_index=True)
    order = np.lexsort((out[year].to_numpy(), out["_firm"].to_numpy()))
    out = out.iloc[order].reset_index(drop=True)
    out.insert(0, firm, rec.firm_values[out.pop("_firm").to_numpy()])
    if not return_draws:
        return out
    arrays: dict[str, object] = {
        k: np.concatenate([e[k] for e in extra])[order]
        for k in ("depth", "loss", "recovery_time", "level", "slope", "sigma")
    }
    arrays["posterior"] = pd.concat([e["posterior"] for e in extra], ignore_index=True) \
        .iloc[order].reset_index(drop=True)
    return out, arrays


def _one_shock(rec: _Records, s: int, *, prior: TrendPrior, pre_years, min_pre, horizon,
               draws, rng, scale, epsilon, consecutive, hdi_prob, keep):
    all_firms = np.arange(rec.n_firms)
    near = ~np.isnan(rec.lookup(all_firms, s - 1)) | ~np.isnan(rec.lookup(all_firms, s)) \
        | ~np.isnan(rec.lookup(all_firms, s + 1))
    firms = np.flatnonzero(near)
    m = len(firms)
    row_of = np.full(rec.n_firms, -1, dtype=np.int64)
    row_of[firms] = np.arange(m)

    # ---- pre-shock sufficient statistics (one bincount per sum) -----------------------
    lo = -np.inf if pre_years is None else s - pre_years
    pre = (rec.year <= s - 1) & (rec.year >= lo) & (row_of[rec.firm] >= 0)
    r = row_of[rec.firm[pre]]
    tau = (rec.year[pre] - (s - 1)).astype(float)
    xp = rec.x[pre]
    pos = xp > 0
    yv = np.log(np.where(pos, xp, 1.0))

    def total(w):
        return np.bincount(r[pos], weights=w[pos], minlength=m)

    n = np.bincount(r[pos], minlength=m).astype(float)
    zeros_pre = np.bincount(r[~pos], minlength=m) > 0
    St, Stt = total(tau), total(tau * tau)
    Sy, Sty, Syy = total(yv), total(tau * yv), total(yv * yv)

    # ---- closed-form normal-inverse-gamma posterior -----------------------------------
    p11 = n + prior.level_sd ** -2
    p12 = St
    p22 = Stt + prior.slope_sd ** -2
    det = p11 * p22 - p12 * p12
    v11, v12, v22 = p22 / det, -p12 / det, p11 / det
    m_a = v11 * Sy + v12 * Sty
    m_b = v12 * Sy + v22 * Sty
    shape = prior.sigma_shape + n / 2.0
    rate = prior.sigma_scale + 0.5 * np.maximum(Syy - (m_a * Sy + m_b * Sty), 0.0)

    # ---- post-shock window --------------------------------------------------------------
    last = rec.last_year[firms]
    end = last if horizon is None else np.minimum(last, s + horizon - 1)
    width = np.maximum(end - s + 1, 0)
    H = max(int(width.max(initial=0)), 1)
    Y = np.full((m, H), np.nan)
    for h in range(H):
        Y[:, h] = rec.lookup(firms, s + h)
    inside = np.arange(H)[None, :] < width[:, None]
    missing_post = (inside & np.isnan(Y)).any(axis=1)
    zero_post = (inside & (Y == 0)).any(axis=1)
    with np.errstate(divide="ignore"):
        logY = np.log(np.where(inside & (Y > 0), Y, 1.0))
    if scale == "none":
        c = np.ones(m)
    elif scale == "sd":
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.sqrt(np.maximum(Syy - Sy * Sy / n, 0.0) / (n - 1))
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.abs(Sy / n)
    reason = np.select(
        [n < min_pre, zeros_pre, width == 0, missing_post, zero_post, ~(c > 0)],
        [1, 2, 3, 4, 5, 6], default=0)
    ok = reason == 0
    c = np.where(ok, c, 1.0)
    taus = np.arange(1, H + 1, dtype=float)

    # ---- the posterior-mean path ----------------------------------------------------------
    d_pt, l_pt, r_pt = gap_measures(m_a[:, None] + m_b[:, None] * taus, logY, inside,
                                    scale=c, epsilon=epsilon, consecutive=consecutive)

    # ---- draws, in batches of firms -----------------------------------------------------
    L11 = np.sqrt(v11)
    L21 = v12 / L11
    L22 = np.sqrt(np.maximum(v22 - L21 * L21, 0.0))
    names = ("depth", "loss", "recovery_time", "level", "slope", "sigma")
    kept = {k: np.full((m, draws), np.nan) for k in names} if keep else {}
    stats = {k: np.full(m, np.nan) for k in
             ("depth", "depth_sd", "depth_hdi_low", "depth_hdi_high", "loss", "loss_sd",
              "loss_hdi_low", "loss_hdi_high", "recovery_time", "prob_recovered")}
    rows = np.flatnonzero(ok)
    step = max(1, _CHUNK_ELEMENTS // (draws * H))
    for start in range(0, len(rows), step):
        b = rows[start:start + step]
        sigma = np.sqrt(rate[b, None] / rng.gamma(shape[b, None], 1.0, (len(b), draws)))
        z1 = rng.standard_normal((len(b), draws))
        z2 = rng.standard_normal((len(b), draws))
        a_d = m_a[b, None] + sigma * L11[b, None] * z1
        b_d = m_b[b, None] + sigma * (L21[b, None] * z1 + L22[b, None] * z2)
        actual = np.where(inside[b], logY[b], np.nan)
        gap = np.empty((H, len(b), draws))  # years first: each year's slice contiguous
        for h in range(H):
            np.multiply(b_d, taus[h], out=gap[h])
            gap[h] += a_d
            gap[h] -= actual[:, h, None]
            if scale != "none":
                gap[h] /= c[b, None]
        dep, los, rtm = _gap_stats(gap, epsilon, consecutive)
        for key, val in (("depth", dep), ("loss", los)):
            stats[key][b] = val.mean(axis=1)
            stats[f"{key}_sd"][b] = val.std(axis=1, ddof=1) if draws > 1 else np.nan
            stats[f"{key}_hdi_low"][b], stats[f"{key}_hdi_high"][b] = _hdi(val, hdi_prob)
        censored = np.isnan(rtm)
        stats["recovery_time"][b] = np.median(np.where(censored, np.inf, rtm), axis=1)
        stats["prob_recovered"][b] = 1.0 - censored.mean(axis=1)
        if keep:
            for key, val in (("depth", dep), ("loss", los), ("recovery_time", rtm),
                             ("level", a_d), ("slope", b_d), ("sigma", sigma)):
                kept[key][b] = val

    frame = pd.DataFrame({"_firm": firms, "n_pre": n.astype(np.int64),
                          "window": width,
                          "trend_level": np.where(n > 0, m_a, np.nan),
                          "trend_slope": np.where(n > 0, m_b, np.nan)})
    for key, val in stats.items():
        frame[key] = val
    frame.loc[~np.isfinite(frame["recovery_time"]), "recovery_time"] = np.nan
    frame["depth_point"] = np.where(ok, d_pt, np.nan)
    frame["loss_point"] = np.where(ok, l_pt, np.nan)
    frame["recovery_time_point"] = np.where(ok, r_pt, np.nan)
    frame["note"] = _notes([("counterfactual", reason, _REASONS)])
    more: dict[str, object] = {}
    if keep:
        more = dict(kept)
        more["posterior"] = pd.DataFrame({
            "m_level": m_a, "m_slope": m_b, "v_level": v11, "v_cov": v12, "v_slope": v22,
            "shape": shape, "scale": rate})
    return frame, more
