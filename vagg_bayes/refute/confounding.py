"""How strong an omitted confounder would have to be to move an effect's HDI to zero.

``unobserved_common_cause`` is Cinelli and Hazlett's (2020) omitted-variable-bias
sensitivity analysis (MATH.md section 6) read off the posterior. For one regression
coefficient with posterior mean ``b`` and SD ``s`` (the t-like ratio ``t = b / s``) and
residual degrees of freedom ``df``:

- the robustness value ``RV`` is the partial R² that a confounder would need with both
  the treatment and the outcome to bring the estimate to zero, and ``RV_alpha`` the one
  that brings the 94 % interval to zero (``alpha = 0.06``, the HDI's level);
- a confounder ``k`` times as strong as an observed control ``X_j`` (its partial R² with
  the treatment and with the outcome, sensemakr's ``ovb_bounds``) gives a bound on the
  bias; the estimate is adjusted (moved towards zero) and its interval recomputed.

**Rule.** An effect is *fragile* (fails) when a confounder as strong as the strongest
observed control (``k = 1``, :data:`K_FRAGILE`) would bring its 94 % interval to zero
(or across it); it passes when that takes more, and ``k*`` -- the multiple of the
strongest control that would -- is reported. It is inconclusive when the effect's HDI
already covers zero (nothing to explain away) or when there is no observed control to
benchmark against (``RV`` alone has no yardstick).

**Panels.** The partial R² terms come from the regression that the model's fixed part
identifies: with unit effects that identify slopes within units (``unit_effects`` is
``"within"`` or ``"fixed"``) every column is demeaned within units (time indicators
kept; the unit means of the Mundlak terms vanish), and ``df`` counts one absorbed
parameter per unit; without unit effects but with groups, columns are demeaned within
groups (the model's group intercepts). A control that is constant within units is
absorbed by the unit effects and cannot serve as a benchmark (it is said so).

**Effects.** ``total`` (without mediators: the treatment's coefficient; with
mediators: the regression of the outcome on treatment and controls, no mediators) and
``direct`` (the treatment's coefficient in the outcome equation) are single
coefficients. ``indirect:<m>`` is the product of the treatment-to-mediator path
(confounder of treatment and mediator, mediator equation) and the mediator-to-outcome
path (confounder of mediator and outcome, outcome equation); its interval under the
bound is the Monte Carlo interval of the product of the two adjusted paths, scaled to
the effect's own scale; ``indirect`` sums the paths. For a Bernoulli outcome the linear
(partial R²) algebra is an approximation on the logit coefficient, and said so.

May import: numpy, pandas, scipy, vagg_bayes.refute.base, vagg_bayes.equations.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.equations import OUTCOME
from vagg_bayes.refute.base import Context, Outcome, Row, hdi, register

#: 94 % intervals: alpha of the critical value of the interval that must reach zero.
ALPHA = 0.06
#: Fragile when a confounder this many times as strong as the strongest control suffices.
K_FRAGILE = 1.0
#: Largest multiple of a control searched for k*.
K_MAX = 100.0
_MC_DRAWS = 4000  # normal draws for the intervals of products and sums


# -- Cinelli & Hazlett algebra ------------------------------------------------------------
def robustness_value(t: float, dof: float, *, q: float = 1.0, alpha: float | None = None) -> float:
    """Robustness value ``RV_q`` (``alpha=None``) or ``RV_{q,alpha}`` of a t-like ratio.

    The partial R² an omitted confounder needs with both the treatment and the outcome
    to reduce the estimate by ``100 q`` % (``alpha=None``), or to bring the
    ``1 - alpha`` interval to that point. Includes the case where the constraint on the
    treatment side does not bind (Cinelli and Hazlett 2020, section 4.1; sensemakr).
    """
    fq = q * abs(t) / math.sqrt(dof)
    if alpha is None:
        return 0.5 * (math.sqrt(fq**4 + 4 * fq**2) - fq**2)
    from scipy import stats

    f_crit = abs(stats.t.ppf(alpha / 2, dof - 1)) / math.sqrt(dof - 1)
    fqa = fq - f_crit
    if fqa <= 0:
        return 0.0
    if fq > 1 / f_crit:
        return (fq**2 - f_crit**2) / (1 + fq**2)
    return 0.5 * (math.sqrt(fqa**4 + 4 * fqa**2) - fqa**2)


def benchmark_bound(r2dxj_x: float, r2yxj_dx: float, kd: float = 1.0,
                    ky: float | None = None) -> tuple[float, float] | None:
    """Partial R² of a confounder ``kd`` (``ky``) times as strong as control ``X_j``.

    Parameters
    ----------
    r2dxj_x : float
        Partial R² of ``X_j`` with the treatment, given the other controls.
    r2yxj_dx : float
        Partial R² of ``X_j`` with the outcome, given the treatment and other controls.
    kd, ky : float
        Multiples on the treatment and outcome side (``ky`` defaults to ``kd``).

    Returns
    -------
    (r2dz_x, r2yz_dx) or None
        None when no such confounder can exist (the implied R² reaches 1). The outcome
        side is capped at 1 (sensemakr's ``ovb_partial_r2_bound``).
    """
    ky = kd if ky is None else ky
    if not (0 <= r2dxj_x < 1 and 0 <= r2yxj_dx < 1):
        return None
    r2dz_x = kd * r2dxj_x / (1 - r2dxj_x)
    if r2dz_x >= 1:
        return None
    denom = (1 - kd * r2dxj_x) * (1 - r2dxj_x)
    if denom <= 0:
        return None
    r2zxj_xd = kd * r2dxj_x**2 / denom
    if r2zxj_xd >= 1:
        return None
    r2yz_dx = ((math.sqrt(ky) + math.sqrt(r2zxj_xd)) / math.sqrt(1 - r2zxj_xd)) ** 2 \
        * r2yxj_dx / (1 - r2yxj_dx)
    return r2dz_x, min(r2yz_dx, 1.0)


def adjust(estimate: float, se: float, dof: float, r2dz_x: float,
           r2yz_dx: float) -> tuple[float, float]:
    """Remove the largest bias of a confounder with these partial R² from an estimate.

    Returns the adjusted estimate (moved towards zero) and SD (Cinelli and Hazlett 2020,
    section 4).
    """
    bias = se * math.sqrt(r2yz_dx * r2dz_x / (1 - r2dz_x)) * math.sqrt(dof)
    se_adj = se * math.sqrt((1 - r2yz_dx) / (1 - r2dz_x)) * math.sqrt(dof / (dof - 1))
    return estimate - math.copysign(bias, estimate), se_adj


# -- the regressions behind the partial R² ------------------------------------------------
@dataclass(frozen=True)
class Benchmark:
    """An observed control and its partial R² with the treatment and the outcome."""

    name: str
    r2dxj_x: float
    r2yxj_dx: float


@dataclass(frozen=True)
class Path:
    """One regression coefficient judged for confounding.

    ``estimate`` and ``se`` are the posterior mean and SD of the coefficient, ``dof``
    the residual degrees of freedom of its (demeaned) regression.
    """

    label: str
    estimate: float
    se: float
    dof: float
    benchmarks: tuple[Benchmark, ...]
    absorbed: tuple[str, ...] = ()

    @property
    def t(self) -> float:
        """Posterior mean / SD: the t-like ratio."""
        return self.estimate / self.se if self.se > 0 else math.inf

    def worst(self, k: float) -> tuple[float, float, str] | None:
        """Adjust for the most damaging control at ``k``: (estimate, sd, benchmark).

        None when no benchmark gives a possible confounder at ``k``.
        """
        best = None
        for b in self.benchmarks:
            bound = benchmark_bound(b.r2dxj_x, b.r2yxj_dx, k)
            if bound is None:
                continue
            est, sd = adjust(self.estimate, self.se, self.dof, *bound)
            # the most damaging bound brings the interval's inner end closest to (or past) 0
            signed = math.copysign(1.0, self.estimate) * est
            score = signed / sd if sd > 0 else math.copysign(math.inf, signed) * (signed != 0)
            if best is None or score < best[0]:
                best = (score, est, sd, b.name)
        return None if best is None else best[1:]


def _demean(M: np.ndarray, codes: np.ndarray) -> np.ndarray:
    counts = np.bincount(codes).astype(float)
    out = np.empty_like(M)
    for j in range(M.shape[1]):
        means = np.bincount(codes, weights=M[:, j], minlength=counts.size) / counts
        out[:, j] = M[:, j] - means[codes]
    return out


def _rss(gram: np.ndarray, target: int, regressors: list[int]) -> float:
    """Residual sum of squares of column ``target`` on ``regressors`` from X'X."""
    if not regressors:
        return float(gram[target, target])
    A = gram[np.ix_(regressors, regressors)]
    c = gram[regressors, target]
    coef = np.linalg.lstsq(A, c, rcond=None)[0]
    return float(gram[target, target] - c @ coef)


def regression_view(design, response: np.ndarray, focus: int, columns: list[int],
                    blocks: dict[str, list[int]]) -> tuple[float, list[Benchmark], list[str], str]:
    """Partial R² of each benchmark block and the residual df of one regression.

    Parameters
    ----------
    design : Design
        Supplies the rows' unit and group codes and its unit-effects mode.
    response : ndarray (n,)
    focus : int
        Column of ``design.X`` whose coefficient is judged (the "treatment" D).
    columns : list of int
        The other columns of ``design.X`` in the regression (intercept included).
    blocks : dict
        Benchmark name -> its columns (a subset of ``columns``).

    Returns
    -------
    dof, benchmarks, absorbed, how
        ``absorbed`` names the blocks that vanish within units; ``how`` says what was
        demeaned.
    """
    n = design.n
    M = np.column_stack([response, design.X[:, focus], design.X[:, columns]])
    absorbed_levels = 0
    how = "no demeaning"
    if design.unit_effects in ("within", "fixed") and design.unit_codes is not None:
        M = _demean(M, design.unit_codes)
        absorbed_levels = int(design.unit_codes.max()) + 1
        how = "demeaned within units (the model's unit effects identify slopes within units)"
    elif design.group_codes is not None:
        M = _demean(M, design.group_codes)
        absorbed_levels = int(design.group_codes.max()) + 1
        how = "demeaned within groups (the model's group intercepts)"
    scale = np.sqrt((M**2).sum(axis=0))
    raw = np.sqrt((np.column_stack([response, design.X[:, focus], design.X[:, columns]])**2)
                  .sum(axis=0))
    alive = scale > 1e-9 * np.maximum(raw, 1.0)
    alive[:2] = True
    gram = M.T @ M
    # positions in M: 0 response, 1 focus, 2.. the other columns
    pos = {col: 2 + i for i, col in enumerate(columns)}
    others = [pos[c] for c in columns if alive[pos[c]]]
    sub = gram[np.ix_([1, *others], [1, *others])]
    eig = np.linalg.eigvalsh(sub)
    rank = int((eig > eig.max() * 1e-10).sum())
    dof = float(n - absorbed_levels - rank)
    benchmarks, absorbed = [], []
    for name, cols in blocks.items():
        mine = [pos[c] for c in cols if alive[pos[c]]]
        if not mine:
            absorbed.append(name)
            continue
        rest = [p for p in others if p not in mine]
        rss_d_full = _rss(gram, 1, others)
        rss_d_rest = _rss(gram, 1, rest)
        rss_y_full = _rss(gram, 0, [1, *others])
        rss_y_rest = _rss(gram, 0, [1, *rest])
        r2d = 1 - rss_d_full / rss_d_rest if rss_d_rest > 0 else 0.0
        r2y = 1 - rss_y_full / rss_y_rest if rss_y_rest > 0 else 0.0
        benchmarks.append(Benchmark(name, min(max(r2d, 0.0), 1.0), min(max(r2y, 0.0), 1.0)))
    return max(dof, 2.0), benchmarks, absorbed, how


def _control_blocks(design, controls, drop: set[int]) -> dict[str, list[int]]:
    blocks = {}
    for c in controls:
        cols = [k for k, term in enumerate(design.terms)
                if k not in drop and (term == c or term.startswith(f"{c}["))]
        if cols:
            blocks[c] = cols
    return blocks


def _mean_columns(design, names: set[str]) -> set[int]:
    means = {f"mean({n})" for n in names} | {f"group_mean({n})" for n in names}
    return {k for k, term in enumerate(design.terms) if term in means}


def _path(label, design, response, focus, drop, controls, draws) -> tuple[Path, str]:
    columns = [k for k in range(design.p) if k != focus and k not in drop]
    blocks = _control_blocks(design, controls, drop)
    dof, benchmarks, absorbed, how = regression_view(design, response, focus, columns, blocks)
    draws = np.asarray(draws, dtype=float).ravel()
    path = Path(label, float(draws.mean()), float(draws.std(ddof=1)), dof,
                tuple(benchmarks), tuple(absorbed))
    return path, how


def effect_paths(result) -> dict[str, tuple[list[Path], str]]:
    """Find the coefficient paths behind every effect of ``result``, and what was demeaned.

    Returns effect name -> (paths, how); one path for ``total`` and ``direct``, two
    (treatment -> mediator, mediator -> outcome) for ``indirect:<m>``, all of them for
    ``indirect``.
    """
    spec = result.spec
    fit = result.fits[OUTCOME]
    d = fit.design
    t_idx = d.treatment_index
    draws = result.effect_draws
    out: dict[str, tuple[list[Path], str]] = {}
    if not spec.mediators:
        path, how = _path(f"{spec.treatment} -> {spec.outcome}", d, d.y, t_idx, set(),
                          spec.controls, draws["total"])
        return {"total": ([path], how)}
    mediators = set(spec.mediators)
    drop = {k for k, term in enumerate(d.terms) if term in mediators} | _mean_columns(d, mediators)
    total, how = _path(f"{spec.treatment} -> {spec.outcome} (mediators left out)", d, d.y, t_idx,
                       drop, spec.controls, draws["total"])
    out["total"] = ([total], how)
    direct, how = _path(f"{spec.treatment} -> {spec.outcome} given the mediators", d, d.y, t_idx,
                        set(), spec.controls, draws["direct"])
    out["direct"] = ([direct], how)
    every = []
    for m in spec.mediators:
        md = result.fits[m].design
        a, how_a = _path(f"{spec.treatment} -> {m}", md, md.y, md.treatment_index, set(),
                         spec.controls, result.fits[m].beta[..., md.treatment_index])
        b_idx = d.terms.index(m)
        b, _ = _path(f"{m} -> {spec.outcome}", d, d.y, b_idx, set(), spec.controls,
                     fit.beta[..., b_idx])
        out[f"indirect:{m}"] = ([a, b], how_a)
        every.extend([a, b])
    if "indirect" in draws:
        out["indirect"] = (every, how)
    return out


# -- judging an effect --------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _t_crit(dof: float) -> float:
    from scipy import stats

    return float(abs(stats.t.ppf(ALPHA / 2, dof - 1)))


@functools.cache
def _normals() -> np.ndarray:
    """Draw fixed standard normals (common random numbers: k* lies on a smooth curve)."""
    return np.random.default_rng(20200101).standard_normal((_MC_DRAWS, 64))


def _interval(paths: list[Path], k: float | None, scale: float):
    """Interval of the effect after the worst bound at ``k`` (None: unadjusted).

    Returns (estimate, low, high, benchmarks) on the effect's scale, or None when no
    bound is possible.
    """
    adjusted, names = [], []
    for p in paths:
        if k is None:
            adjusted.append((p.estimate, p.se))
            continue
        worst = p.worst(k)
        if worst is None:
            return None
        adjusted.append(worst[:2])
        names.append(worst[2])
    if len(paths) == 1:
        est, sd = adjusted[0]
        half = _t_crit(paths[0].dof) * sd
        return scale * est, *sorted((scale * (est - half), scale * (est + half))), names
    # products of (treatment -> mediator, mediator -> outcome) pairs, summed
    z = _normals()
    total = np.zeros(_MC_DRAWS)
    point = 0.0
    for j in range(0, len(paths), 2):
        (ea, sa), (eb, sb) = adjusted[j], adjusted[j + 1]
        total += (ea + sa * z[:, j % 64]) * (eb + sb * z[:, (j + 1) % 64])
        point += ea * eb
    low, high = np.quantile(total, [ALPHA / 2, 1 - ALPHA / 2])
    return scale * point, *sorted((scale * low, scale * high)), names


def _reaches_zero(estimate: float, low: float, high: float, sign: float) -> bool:
    return (low <= 0 <= high) or math.copysign(1.0, estimate) != sign or estimate == 0


def judge(name: str, draws: np.ndarray, paths: list[Path], how: str, *,
          family: str = "gaussian") -> tuple[Row, list[dict]]:
    """One row for effect ``name``: its fragility by the stated rule, and table records."""
    draws = np.asarray(draws, dtype=float).ravel()
    mean = float(draws.mean())
    low0, high0 = hdi(draws)
    # the paths' own product (or coefficient) on the coefficient scale -> effect scale
    plain = _interval(paths, None, 1.0)
    scale = mean / plain[0] if plain[0] != 0 else 1.0
    rv = min(robustness_value(p.t, p.dof) for p in paths)
    rv_a = min(robustness_value(p.t, p.dof, alpha=ALPHA) for p in paths)
    records = [{"effect": name, "path": p.label, "estimate": p.estimate, "sd": p.se,
                "t": p.t, "dof": p.dof, "rv": robustness_value(p.t, p.dof),
                "rv_alpha": robustness_value(p.t, p.dof, alpha=ALPHA),
                "benchmark": b.name, "r2dxj_x": b.r2dxj_x, "r2yxj_dx": b.r2yxj_dx,
                "bound_k1": benchmark_bound(b.r2dxj_x, b.r2yxj_dx, 1.0)}
               for p in paths for b in (p.benchmarks or [Benchmark("", math.nan, math.nan)])]
    absorbed = sorted({a for p in paths for a in p.absorbed})
    rule = (f"fragile (fail) when a confounder {K_FRAGILE:g} x as strong as the strongest "
            f"observed control (Cinelli-Hazlett partial-R2 bounds, t = posterior mean/sd, "
            f"{how}) brings the 94 % interval to zero; inconclusive when the HDI already "
            f"covers zero or no control can serve as benchmark")
    stats_text = (f"RV = {rv:.3f}, RV_alpha(0.06) = {rv_a:.3f}"
                  + (" (weakest path)" if len(paths) > 1 else ""))
    extra = ""
    if absorbed:
        extra += f"; absorbed by the unit effects, not benchmarks: {', '.join(absorbed)}"
    if family == "bernoulli":
        extra += ("; Bernoulli outcome: the partial R2 are linear-probability "
                  "approximations")

    def row(verdict, refuted, lo, hi, text):
        return Row("unobserved_common_cause", name, mean, refuted, lo, hi, verdict,
                   f"{rule}. {text}; {stats_text}{extra}")

    if low0 <= 0 <= high0:
        return row("inconclusive", math.nan, math.nan, math.nan,
                   f"the 94 % HDI [{low0:.4g}, {high0:.4g}] already covers zero"), records
    if not all(p.benchmarks for p in paths):
        return row("inconclusive", math.nan, math.nan, math.nan,
                   "no observed control to benchmark against"), records
    sign = math.copysign(1.0, mean)
    at_one = _interval(paths, K_FRAGILE, scale)
    k_star = _k_star(paths, scale, sign)
    k_text = (f"no possible confounder up to {K_MAX:g} x a control brings the interval to "
              "zero" if k_star is None
              else f"k* = {k_star:.3g} (the multiple of the strongest control that brings "
                   f"the interval to zero)")
    if at_one is None:
        return row("pass", math.nan, math.nan, math.nan,
                   f"no confounder {K_FRAGILE:g} x as strong as a control is possible; "
                   + k_text), records
    est1, lo1, hi1, names = at_one
    strongest = ", ".join(dict.fromkeys(names))
    fragile = _reaches_zero(est1, lo1, hi1, sign)
    verdict = "fail" if fragile else "pass"
    text = (f"k = {K_FRAGILE:g} x {strongest}: adjusted estimate {est1:.4g}, interval "
            f"[{lo1:.4g}, {hi1:.4g}] -> {'fragile' if fragile else 'robust'}; {k_text}")
    for rec in records:
        rec["k_star"] = k_star
    return row(verdict, est1, lo1, hi1, text), records


def _k_star(paths: list[Path], scale: float, sign: float) -> float | None:
    """Smallest multiple k of the strongest control that brings the interval to zero."""
    def reaches(k):
        got = _interval(paths, k, scale)
        return None if got is None else _reaches_zero(got[0], got[1], got[2], sign)

    grid = np.geomspace(0.01, K_MAX, 81)
    previous = 0.0
    for k in grid:
        r = reaches(float(k))
        if r:
            lo, hi = previous, float(k)
            for _ in range(30):
                mid = 0.5 * (lo + hi)
                if reaches(mid):
                    hi = mid
                else:
                    lo = mid
            return hi
        if r is None:
            return None
        previous = float(k)
    return None


def sensitivity_table(result) -> tuple[list[Row], pd.DataFrame]:
    """Rows (one per effect) and the table of paths and benchmarks for ``result``."""
    family = result.spec.family
    rows, records = [], []
    for name, (paths, how) in effect_paths(result).items():
        row, recs = judge(name, result.effect_draws[name], paths, how, family=family)
        rows.append(row)
        records.extend(recs)
    table = pd.DataFrame.from_records(records)
    if "bound_k1" in table:
        bound = table.pop("bound_k1")
        table["r2dz_x_k1"] = [b[0] if b else math.nan for b in bound]
        table["r2yz_dx_k1"] = [b[1] if b else math.nan for b in bound]
    return rows, table


@register("unobserved_common_cause")
def unobserved_common_cause(context: Context) -> Outcome:
    """Cinelli-Hazlett robustness of every effect to an omitted confounder (no refits).

    Returns one row per effect (see the module docstring for the rule) and, in
    ``notes["table"]``, every path's RV, RV_alpha and benchmark partial R².
    """
    import time

    start = time.perf_counter()
    rows, table = sensitivity_table(context.result)
    seconds = time.perf_counter() - start
    rows = [dataclasses.replace(r, seconds=seconds) for r in rows]
    return Outcome(rows=rows, notes={"table": table})
