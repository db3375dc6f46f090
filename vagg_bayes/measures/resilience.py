r"""Export resilience from raw records: firms against their industry, cities against the mix.

Three functions, vectorised over firms (NumPy on sorted integer keys; no Python loop over
firms or rows, only over the few shock years)::

    firm_resilience(df, firm=, industry=, year=, exports=, shock_years=)
        one row per firm and shock: resistance, recovery (against the firm's industry
        without the firm), survived, years_to_recover (censored)
    annual_resilience(df, firm=, industry=, year=, exports=)
        one row per firm-year: this year's growth against the industry's without the firm
        (the firm-year resilience index of the literature, ER_it)
    city_resilience(df, region=, industry=, year=, exports=, shock_years=)
        one row per region and shock: Martin's sensitivity index and resistance /
        recovery against the change expected from the region's industry mix

**Firm level.** For firm :math:`i` of industry :math:`k` between years :math:`t_0` and
:math:`t_1` (the year before the shock and the shock year for *resistance*; the shock year
and the year after for *recovery*), with :math:`X` the export value and :math:`S_{k,t}`
the industry's total in year :math:`t` over every record of that year:

.. math::

    g_i = X_{i,t_1} / X_{i,t_0} - 1, \qquad
    g_{k(-i)} = \frac{S_{k,t_1} - X_{i,t_1}}{S_{k,t_0} - X_{i,t_0}} - 1

``form="ratio"`` gives :math:`(g_i - g_{k(-i)}) / |g_{k(-i)}|` and ``form="logdiff"``
:math:`\Delta \ln X_i - \Delta \ln X_{k(-i)}` (the same totals, in logs). Both are 0 for a
firm that did as well as the rest of its industry and positive for one that did better.

**What is undefined** (NaN, and the reason in the ``note`` column, e.g.
``"resistance: zero exports in the year before the shock (growth undefined)"``):

- *missing years*: no record for :math:`t_0` or :math:`t_1` (a firm-year without a row
  is *not observed*, never read as zero exports; if your records leave out the years in
  which a firm did not export, add those rows with exports 0 first);
- *zero exports*: :math:`X_{i,t_0} = 0` (growth from nothing); with ``form="logdiff"``
  also :math:`X_{i,t_1} = 0` (log of zero). With ``form="ratio"`` a firm that stops
  exporting has :math:`g_i = -1`, which is defined;
- *a firm alone in its industry*: no other firm of the industry exports in
  :math:`t_0`, so the leave-one-out industry growth is undefined; with
  ``form="logdiff"`` also when no other firm exports in :math:`t_1`; with
  ``form="ratio"`` when :math:`g_{k(-i)} = 0` exactly (division by zero).

May import: numpy, pandas, vagg_bayes.errors, vagg_bayes.measures._checks.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.errors import DataError
from vagg_bayes.measures._checks import (
    key_column,
    no_duplicates,
    numeric_column,
    require_columns,
    require_frame,
)

__all__ = ["annual_resilience", "city_resilience", "firm_resilience"]

FORMS = ("ratio", "logdiff")
MAX_YEAR_SPAN = 1000  # a wider span of "years" is a unit mistake (dates, months)

# ---- reasons a phase (t0 -> t1) is undefined; the first that applies is noted ----------
_OK, _NO_BASE, _NO_END, _ZERO_BASE, _ZERO_END, _ALONE, _IND_ZERO_END, _IND_FLAT = range(8)
_BEFORE_START, _AFTER_END = 8, 9
_PHASE_REASONS = {
    _NO_BASE: "no record for {base}",
    _NO_END: "no record for {end}",
    _ZERO_BASE: "zero exports in {base} (growth undefined)",
    _ZERO_END: "zero exports in {end} (log of zero)",
    _ALONE: "no other firm of its industry exports in {base} (alone in its industry: "
            "leave-one-out industry growth undefined)",
    _IND_ZERO_END: "no other firm of its industry exports in {end} (log of zero)",
    _IND_FLAT: "leave-one-out industry growth is exactly zero (ratio undefined; "
               "form='logdiff' is defined)",
    _BEFORE_START: "the records start after {base}",
    _AFTER_END: "the records end before {end}",
}
_RESIST = {"base": "the year before the shock", "end": "the shock year"}
_RECOVER = {"base": "the shock year", "end": "the year after the shock"}
_ANNUAL = {"base": "the previous year", "end": "this year"}

_SURV_REASONS = {
    1: "no record for the shock year",
    2: "zero exports in the shock year (not an exporter that could survive)",
    3: "no record for the year after the shock",
    4: "the records end at the shock year",
}
_YTR_REASONS = {
    1: "no record for the year before the shock (no level to regain)",
    2: "zero exports in the year before the shock (no level to regain)",
    3: "no record from the shock year on",
    4: "censored (not back to the pre-shock level by the firm's last record)",
    5: "the records start after the year before the shock",
}


# --------------------------------------------------------------------------- the records


@dataclass(frozen=True)
class _Records:
    """Firm-year records sorted by (firm, year), with integer codes and industry totals."""

    firm: np.ndarray  # firm code per sorted row
    year: np.ndarray  # int64 per sorted row
    x: np.ndarray  # exports per sorted row
    key: np.ndarray  # firm * span + (year - ymin), sorted, unique
    firm_values: pd.Index
    industry_values: pd.Index
    firm_industry: np.ndarray  # industry code per firm code
    last_year: np.ndarray  # last record year per firm code
    ymin: int
    ymax: int
    span: int
    total: np.ndarray  # industry-year totals, (n_industries, span)
    n_pos: np.ndarray  # industry-year counts of records with exports > 0

    @property
    def n_firms(self) -> int:
        return len(self.firm_values)

    def lookup(self, firms: np.ndarray, year: int | np.ndarray) -> np.ndarray:
        """Return the exports of ``firms`` in ``year`` (NaN where there is no record)."""
        off = np.asarray(year, dtype=np.int64) - self.ymin
        inside = (off >= 0) & (off < self.span)
        q = firms.astype(np.int64) * self.span + np.clip(off, 0, self.span - 1)
        idx = np.minimum(np.searchsorted(self.key, q), len(self.key) - 1)
        found = inside & (self.key[idx] == q)
        return np.where(found, self.x[idx], np.nan)

    def industry(self, industries: np.ndarray, year: int | np.ndarray):
        """Industry totals and positive-export counts in ``year`` (0 outside the records)."""
        off = np.asarray(year, dtype=np.int64) - self.ymin
        inside = (off >= 0) & (off < self.span)
        off = np.clip(off, 0, self.span - 1)
        total = np.where(inside, self.total[industries, off], 0.0)
        n_pos = np.where(inside, self.n_pos[industries, off], 0)
        return total, n_pos


def _prepare(df, *, firm, industry, year, exports, func: str) -> _Records:
    df = require_frame(df, func)
    roles = {"firm": firm, "industry": industry, "year": year, "exports": exports}
    if industry is None:  # one industry for all (measures that need no benchmark)
        del roles["industry"]
    require_columns(df, roles, func)
    key_column(df, firm, "firm", func)
    if industry is not None:
        key_column(df, industry, "industry", func)
    y = numeric_column(df, year, "year", func, integer=True).astype(np.int64)
    x = numeric_column(df, exports, "exports", func, nonnegative=True,
                       fix=" (0 where the firm did not export)")
    ymin, ymax = int(y.min()), int(y.max())
    span = ymax - ymin + 1
    if span > MAX_YEAR_SPAN:
        raise DataError(
            f"{func}: column {year!r} (year=) spans {span} units ({ymin} to {ymax}); it must "
            "hold calendar years. Convert dates or months to years (e.g. with "
            "pd.to_datetime(...).dt.year) and add up the records of each firm-year."
        )
    fcode, fvals = pd.factorize(df[firm], sort=True)
    if industry is None:
        icode, ivals = np.zeros(len(df), dtype=np.int64), pd.Index([None])
    else:
        icode, ivals = pd.factorize(df[industry], sort=True)
    key = fcode.astype(np.int64) * span + (y - ymin)
    order = np.argsort(key, kind="stable")
    key_s = key[order]
    if (key_s[1:] == key_s[:-1]).any():
        no_duplicates(df, [firm, year], func,
                      "Each firm may have one record a year: add up the export values of "
                      "each firm-year (e.g. df.groupby([firm, year], as_index=False)"
                      "[exports].sum()) or drop the repeated rows.")
    f_s, i_s = fcode[order], icode[order]
    same = f_s[1:] == f_s[:-1]
    moved = same & (i_s[1:] != i_s[:-1])
    if moved.any():
        at = int(np.flatnonzero(moved)[0])
        raise DataError(
            f"{func}: column {industry!r} (industry=) changes within a firm: firm "
            f"{fvals[f_s[at]]!r} is in {ivals[i_s[at]]!r} and in {ivals[i_s[at + 1]]!r} "
            f"({int(moved.sum())} changes in all). The leave-one-out benchmark needs one "
            "industry per firm: assign each firm its main industry (e.g. the industry of "
            "its largest export year) before measuring."
        )
    n_firms, n_ind = len(fvals), len(ivals)
    firm_industry = np.empty(n_firms, dtype=np.int64)
    firm_industry[f_s] = i_s
    y_s, x_s = y[order], x[order]
    last_year = np.full(n_firms, ymin - 1, dtype=np.int64)
    last_year[f_s] = y_s  # sorted by year within firm: the last write is the last year
    ikey = icode.astype(np.int64) * span + (y - ymin)
    total = np.bincount(ikey, weights=x, minlength=n_ind * span).reshape(n_ind, span)
    n_pos = np.bincount(ikey, weights=(x > 0).astype(float), minlength=n_ind * span)
    return _Records(
        firm=f_s, year=y_s, x=x_s, key=key_s, firm_values=pd.Index(fvals),
        industry_values=pd.Index(ivals), firm_industry=firm_industry, last_year=last_year,
        ymin=ymin, ymax=ymax, span=span, total=total,
        n_pos=n_pos.reshape(n_ind, span).round().astype(np.int64),
    )


def _check_form(form: object, func: str) -> str:
    if form not in FORMS:
        raise DataError(
            f"{func}: form={form!r} is not a known form. Use form='ratio' for "
            "(g_i - g_k(-i)) / |g_k(-i)| or form='logdiff' for dln X_i - dln X_k(-i)."
        )
    return str(form)


def _check_winsorize(winsorize: object, func: str) -> tuple[float, float] | None:
    if winsorize is None:
        return None
    try:
        if isinstance(winsorize, int | float) and not isinstance(winsorize, bool):
            lo, hi = float(winsorize), 1.0 - float(winsorize)
        else:
            lo, hi = (float(v) for v in winsorize)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (0.0 <= lo < hi <= 1.0):
        raise DataError(
            f"{func}: winsorize={winsorize!r} must be None, a pair of quantiles (low, high) "
            "with 0 <= low < high <= 1, such as (0.01, 0.99), or one number q < 0.5 "
            "meaning (q, 1 - q)."
        )
    return lo, hi


def _check_shocks(shock_years: object, rec: _Records, year: Hashable, func: str) -> list[int]:
    values = [shock_years] if not isinstance(shock_years, Iterable) else list(shock_years)
    out = []
    for s in values:
        ok = isinstance(s, int | np.integer | float | np.floating) and not isinstance(s, bool)
        if not ok or float(s) != round(float(s)) or not rec.ymin <= int(s) <= rec.ymax:
            raise DataError(
                f"{func}: shock year {s!r} is not a year of the records (column {year!r} "
                f"runs from {rec.ymin} to {rec.ymax}). Pass as shock_years= whole years "
                "within that range (e.g. 2009 and 2020)."
            )
        out.append(int(s))
    if not out:
        raise DataError(f"{func}: shock_years= is empty. Pass at least one shock year.")
    if len(set(out)) != len(out):
        raise DataError(f"{func}: shock_years={out} repeats a year. Name each shock once.")
    return sorted(out)


# --------------------------------------------------------------------------- one phase


def _phase(rec: _Records, firms: np.ndarray, t0: int | np.ndarray, t1: int | np.ndarray,
           form: str, x0: np.ndarray | None = None, x1: np.ndarray | None = None):
    """Firm against its industry without itself between ``t0`` and ``t1``.

    Returns ``(score, firm_change, industry_change, reason)``; ``reason`` is the first
    of the ``_PHASE_REASONS`` codes that applies (``_OK`` where the score is defined).
    """
    x0 = rec.lookup(firms, t0) if x0 is None else x0
    x1 = rec.lookup(firms, t1) if x1 is None else x1
    ind = rec.firm_industry[firms]
    tot0, pos0 = rec.industry(ind, t0)
    tot1, pos1 = rec.industry(ind, t1)
    own0, own1 = np.nan_to_num(x0), np.nan_to_num(x1)
    # others' totals; exactly 0 when no other firm exports (no cancellation error)
    others0 = np.where(pos0 - (own0 > 0) > 0, tot0 - own0, 0.0)
    others1 = np.where(pos1 - (own1 > 0) > 0, tot1 - own1, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "ratio":
            firm_change = np.where(x0 > 0, x1 / x0 - 1.0, np.nan)
            ind_change = np.where(others0 > 0, others1 / others0 - 1.0, np.nan)
            score = np.where(ind_change != 0, (firm_change - ind_change) / np.abs(ind_change),
                             np.nan)
        else:
            firm_change = np.where((x0 > 0) & (x1 > 0), np.log(x1) - np.log(x0), np.nan)
            ind_change = np.where((others0 > 0) & (others1 > 0),
                                  np.log(others1) - np.log(others0), np.nan)
            score = firm_change - ind_change
    t0a, t1a = np.asarray(t0), np.asarray(t1)
    ind_change = np.where((t0a >= rec.ymin) & (t1a <= rec.ymax), ind_change, np.nan)
    reason = np.select(
        [t0a < rec.ymin, np.isnan(x0), t1a > rec.ymax, np.isnan(x1), x0 == 0,
         (form == "logdiff") & (x1 == 0), others0 == 0,
         (form == "logdiff") & (others1 == 0), (form == "ratio") & (ind_change == 0)],
        [_BEFORE_START, _NO_BASE, _AFTER_END, _NO_END, _ZERO_BASE, _ZERO_END, _ALONE,
         _IND_ZERO_END, _IND_FLAT],
        default=_OK,
    )
    score = np.where(reason == _OK, score, np.nan)
    return score, firm_change, ind_change, reason


def _notes(parts: list[tuple[str, np.ndarray, dict[int, str]]]) -> np.ndarray:
    """Join ``"label: reason"`` for every nonzero code, per row ("" where all are 0).

    Strings are built once per distinct combination of codes, not once per row.
    """
    n = len(parts[0][1])
    if n == 0:
        return np.array([], dtype=object)
    combined = np.zeros(n, dtype=np.int64)
    for _, codes, _ in parts:
        combined = combined * 16 + codes
    uniq, inverse = np.unique(combined, return_inverse=True)
    texts = []
    for value in uniq:
        digits = []
        for _ in parts:
            digits.append(int(value % 16))
            value //= 16
        digits.reverse()
        texts.append("; ".join(f"{label}: {table[d]}" for (label, _, table), d
                               in zip(parts, digits, strict=True) if d))
    return np.array(texts, dtype=object)[inverse]


def _phase_table(labels: dict[str, str]) -> dict[int, str]:
    return {code: text.format(**labels) for code, text in _PHASE_REASONS.items()}


def _winsorize(frame: pd.DataFrame, columns: list[str], by: str,
               limits: tuple[float, float] | None) -> None:
    """Clip ``columns`` to their (low, high) quantiles within each ``by`` group, in place."""
    if limits is None:
        return
    lo, hi = limits
    groups = frame.groupby(by, sort=False)
    for col in columns:
        low = groups[col].transform(lambda s: s.quantile(lo))
        high = groups[col].transform(lambda s: s.quantile(hi))
        frame[col] = frame[col].clip(lower=low, upper=high)


# --------------------------------------------------------------------------- firm level


def firm_resilience(
    df: pd.DataFrame,
    *,
    firm: Hashable,
    industry: Hashable,
    year: Hashable,
    exports: Hashable,
    shock_years: int | Iterable[int],
    form: str = "ratio",
    winsorize: float | tuple[float, float] | None = None,
) -> pd.DataFrame:
    r"""Firms' export resistance and recovery around shocks, against their industry.

    For each shock year :math:`s` and each firm with a record in :math:`s - 1`,
    :math:`s` or :math:`s + 1`: *resistance* compares the firm's change from
    :math:`s - 1` to :math:`s` with that of its industry without the firm
    (leave-one-out), *recovery* the change from :math:`s` to :math:`s + 1`; see the
    module docstring for the formulas and for every case that is undefined.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per firm-year: firm, industry, year and export value (any other columns
        are ignored). A firm-year without a row is not observed (never read as 0).
    firm, industry, year, exports : hashable
        The names of those columns in ``df``. ``industry`` must be constant within each
        firm; ``year`` holds whole calendar years; ``exports`` is numeric and >= 0.
    shock_years : int or iterable of int
        The shock years (within the records' years), e.g. ``[2009, 2020]``.
    form : {"ratio", "logdiff"}, default "ratio"
        ``"ratio"``: :math:`(g_i - g_{k(-i)}) / |g_{k(-i)}|` with simple growth rates
        (unstable when the industry's growth is near 0); ``"logdiff"``:
        :math:`\Delta\ln X_i - \Delta\ln X_{k(-i)}`.
    winsorize : float or (float, float), optional
        Clip ``resistance`` and ``recovery`` to these quantiles within each shock year,
        e.g. ``(0.01, 0.99)`` (``0.01`` means the same). None (default): no clipping.

    Returns
    -------
    pandas.DataFrame
        One row per firm and shock, sorted by firm then shock year, with columns

        - ``firm``, ``industry``, ``year`` (the caller's column names; ``year`` holds the
          shock year);
        - ``resistance``, ``recovery``: the measures (NaN where undefined);
        - ``firm_change_resistance``, ``industry_change_resistance``,
          ``firm_change_recovery``, ``industry_change_recovery``: :math:`g_i` and
          :math:`g_{k(-i)}` (ratio form) or the log changes (logdiff form) behind them;
        - ``survived``: 1.0 if the firm exports in :math:`s + 1` given that it exports
          in :math:`s` (:math:`1[X_{s+1} > 0 \mid X_s > 0]`), 0.0 if its exports in
          :math:`s + 1` are 0; NaN when it did not export in :math:`s` or a record is
          missing;
        - ``years_to_recover``, ``recovery_censored``: years from :math:`s` until the
          first record with exports at least the level of :math:`s - 1` (0 when the
          firm did not fall). When no record reaches that level the value is
          *censored*: ``recovery_censored`` is True and ``years_to_recover`` is the
          years from :math:`s` to the firm's last record (a lower bound; a
          (time, censored) pair as survival models take it). NaN when the firm has no
          positive record in :math:`s - 1` or none from :math:`s` on. Years without a
          record are skipped;
        - ``note``: why a value is NaN (or censored), e.g. ``"recovery: no record for
          the year after the shock"``; empty where everything is defined.

    Raises
    ------
    DataError
        A missing column; missing, non-numeric, infinite or negative exports; years
        that are not whole numbers; two rows for the same firm-year; a firm in two
        industries; a shock year outside the records; a bad ``form`` or ``winsorize``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"firm": [1, 1, 2, 2, 3, 3], "ind": ["a"] * 6,
    ...                    "year": [2008, 2009] * 3,
    ...                    "x": [100.0, 80.0, 50.0, 45.0, 50.0, 45.0]})
    >>> out = firm_resilience(df, firm="firm", industry="ind", year="year", exports="x",
    ...                       shock_years=2009)
    >>> float(out.loc[0, "resistance"])  # -20 % against -10 % for the others
    -1.0
    """
    func = "firm_resilience"
    form = _check_form(form, func)
    limits = _check_winsorize(winsorize, func)
    rec = _prepare(df, firm=firm, industry=industry, year=year, exports=exports, func=func)
    shocks = _check_shocks(shock_years, rec, year, func)
    all_firms = np.arange(rec.n_firms)
    frames = []
    for s in shocks:
        xb, xs, xa = (rec.lookup(all_firms, t) for t in (s - 1, s, s + 1))
        firms = np.flatnonzero(~(np.isnan(xb) & np.isnan(xs) & np.isnan(xa)))
        xb, xs, xa = xb[firms], xs[firms], xa[firms]
        res = _phase(rec, firms, s - 1, s, form, xb, xs)
        rcv = _phase(rec, firms, s, s + 1, form, xs, xa)
        with np.errstate(invalid="ignore"):
            survived = np.where((xs > 0) & ~np.isnan(xa), (xa > 0).astype(float), np.nan)
        surv_reason = np.select(
            [np.isnan(xs), xs == 0, (s + 1 > rec.ymax) & np.isnan(xa), np.isnan(xa)],
            [1, 2, 4, 3], default=0)
        ytr, censored, ytr_reason = _years_to_recover(rec, firms, s, xb)
        frames.append(pd.DataFrame({
            "_firm": firms, year: s,
            "resistance": res[0], "recovery": rcv[0],
            "firm_change_resistance": res[1], "industry_change_resistance": res[2],
            "firm_change_recovery": rcv[1], "industry_change_recovery": rcv[2],
            "survived": survived, "years_to_recover": ytr, "recovery_censored": censored,
            "note": _notes([("resistance", res[3], _phase_table(_RESIST)),
                            ("recovery", rcv[3], _phase_table(_RECOVER)),
                            ("survived", surv_reason, _SURV_REASONS),
                            ("years_to_recover", ytr_reason, _YTR_REASONS)]),
        }))
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["_firm", year], kind="stable", ignore_index=True)
    codes = out.pop("_firm").to_numpy()
    out.insert(0, firm, rec.firm_values[codes])
    out.insert(1, industry, rec.industry_values[rec.firm_industry[codes]])
    _winsorize(out, ["resistance", "recovery"], year, limits)
    return out


def _years_to_recover(rec: _Records, firms: np.ndarray, s: int, base: np.ndarray):
    """Years from ``s`` to the first record >= ``base`` (censored at the last record)."""
    base_all = np.full(rec.n_firms, np.nan)
    base_all[firms] = base
    with np.errstate(invalid="ignore"):
        hit = (rec.year >= s) & (rec.x >= base_all[rec.firm])  # NaN base -> False
    rows = np.flatnonzero(hit)
    hit_firms, first = np.unique(rec.firm[rows], return_index=True)
    recovered_year = np.full(rec.n_firms, -1, dtype=np.int64)
    recovered_year[hit_firms] = rec.year[rows[first]]
    ry = recovered_year[firms]
    last = rec.last_year[firms]
    usable = base > 0  # NaN -> False
    recovered = usable & (ry >= 0)
    censored = usable & ~recovered & (last >= s)
    years = np.where(recovered, ry - s, np.where(censored, last - s, np.nan)).astype(float)
    reason = np.select(
        [(s - 1 < rec.ymin), np.isnan(base), base == 0, last < s, censored],
        [5, 1, 2, 3, 4], default=0)
    return years, censored, reason


def annual_resilience(
    df: pd.DataFrame,
    *,
    firm: Hashable,
    industry: Hashable,
    year: Hashable,
    exports: Hashable,
    form: str = "logdiff",
    winsorize: float | tuple[float, float] | None = None,
) -> pd.DataFrame:
    r"""Measure every firm-year's change against its industry's (the firm-year index).

    For every record (firm :math:`i`, year :math:`t`) the firm's change from
    :math:`t - 1` to :math:`t` against its industry without the firm, in the same two
    forms as :func:`firm_resilience` (``ER_it`` of the literature, one value per
    firm-year, the usual outcome of a firm-year panel regression). Undefined values
    follow the same rules (no record for the previous year, zero exports, a firm alone
    in its industry) and are NaN with the reason in ``note``; a firm's first year is
    always NaN.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per firm-year, as for :func:`firm_resilience`.
    firm, industry, year, exports : hashable
        Column names, as for :func:`firm_resilience`.
    form : {"logdiff", "ratio"}, default "logdiff"
        The log-difference form by default: the ratio form is unstable when an
        industry's growth is near 0, which happens every year in some industry.
    winsorize : float or (float, float), optional
        Clip ``resilience`` to these quantiles within each year.

    Returns
    -------
    pandas.DataFrame
        One row per record, sorted by firm then year: ``firm``, ``industry``, ``year``
        (the caller's names), ``resilience``, ``firm_change``, ``industry_change``,
        ``note``.

    Raises
    ------
    DataError
        As :func:`firm_resilience`.
    """
    func = "annual_resilience"
    form = _check_form(form, func)
    limits = _check_winsorize(winsorize, func)
    rec = _prepare(df, firm=firm, industry=industry, year=year, exports=exports, func=func)
    score, firm_change, ind_change, reason = _phase(
        rec, rec.firm, rec.year - 1, rec.year, form, x1=rec.x)
    out = pd.DataFrame({
        firm: rec.firm_values[rec.firm],
        industry: rec.industry_values[rec.firm_industry[rec.firm]],
        year: rec.year,
        "resilience": score,
        "firm_change": firm_change,
        "industry_change": ind_change,
        "note": _notes([("resilience", reason, _phase_table(_ANNUAL))]),
    })
    _winsorize(out, ["resilience"], year, limits)
    return out


# --------------------------------------------------------------------------- city level


def city_resilience(
    df: pd.DataFrame,
    *,
    region: Hashable,
    industry: Hashable,
    year: Hashable,
    exports: Hashable,
    shock_years: int | Iterable[int],
) -> pd.DataFrame:
    r"""Regions' export resilience: Martin's sensitivity index and mix-adjusted resistance.

    Records are added up by region, industry and year (firm-year rows or rows already
    aggregated by region and industry both work; several rows of one region-industry-year
    are summed). The nation :math:`N` is the sum over all regions of the records,
    including the region itself. For region :math:`r` and a phase from :math:`t_0` to
    :math:`t_1` (resistance: the year before the shock to the shock year; recovery: the
    shock year to the year after), with :math:`E` the export value:

    .. math::

        \beta_r &= \frac{\Delta E_r / E_{r,t_0}}{\Delta E_N / E_{N,t_0}}
            \quad \text{(Martin 2012; in a contraction, below 1 is more resistant)} \\
        \Delta E_r^{\mathrm{exp}} &= \sum_i g_{iN}\, E_{ir,t_0},
            \quad g_{iN} = E_{iN,t_1} / E_{iN,t_0} - 1
            \quad \text{(the industry mix at national industry growth)} \\
        \mathrm{resistance}_r &= \frac{\Delta E_r - \Delta E_r^{\mathrm{exp}}}
            {|\Delta E_r^{\mathrm{exp}}|}
            \quad \text{(Martin, Sunley, Gardiner and Tyler 2016)}

    and ``recovery`` likewise over the recovery phase; the ``_simple`` variants take the
    national total growth rate for every industry (:math:`\Delta E_r^{\mathrm{exp}} =
    g_N E_{r,t_0}`). All are centred on 0 (1 for :math:`\beta`); above 0 is better than
    expected. An industry with no national exports in :math:`t_0` contributes nothing
    (the region has none either).

    Parameters
    ----------
    df : pandas.DataFrame
        Export records with region, industry, year and export value columns.
    region, industry, year, exports : hashable
        The names of those columns (``exports`` numeric and >= 0).
    shock_years : int or iterable of int
        Shock years within the records' years.

    Returns
    -------
    pandas.DataFrame
        One row per region and shock, sorted by region then shock year: ``region``,
        ``year`` (the caller's names; the shock year), ``exports_before``,
        ``exports_shock``, ``exports_after`` (the region's totals), ``sensitivity``
        (:math:`\beta_r` over the contraction), ``sensitivity_recovery`` (over the
        recovery), ``resistance``, ``recovery``, ``resistance_simple``,
        ``recovery_simple`` and ``note`` (why a value is NaN: a region without records
        in a year of the phase, no exports at :math:`t_0`, a national or expected
        change of exactly zero).

    Raises
    ------
    DataError
        A missing column; missing, non-numeric, infinite or negative exports; years
        that are not whole numbers; a shock year outside the records.
    """
    func = "city_resilience"
    df = require_frame(df, func)
    require_columns(df, {"region": region, "industry": industry, "year": year,
                         "exports": exports}, func)
    key_column(df, region, "region", func)
    key_column(df, industry, "industry", func)
    y = numeric_column(df, year, "year", func, integer=True).astype(np.int64)
    x = numeric_column(df, exports, "exports", func, nonnegative=True)
    rcode, rvals = pd.factorize(df[region], sort=True)
    icode, _ = pd.factorize(df[industry], sort=True)
    ymin, ymax = int(y.min()), int(y.max())
    span = ymax - ymin + 1
    if span > MAX_YEAR_SPAN:
        raise DataError(
            f"{func}: column {year!r} (year=) spans {span} units; it must hold calendar "
            "years. Convert dates or months to years first."
        )
    shocks = _check_shocks(shock_years, _Span(ymin, ymax), year, func)
    n_r, n_i = len(rvals), int(icode.max()) + 1
    # region x industry x year totals, only for the years the shocks need
    need = sorted({t for s in shocks for t in (s - 1, s, s + 1) if ymin <= t <= ymax})
    slot = np.full(span, -1, dtype=np.int64)
    slot[np.array(need) - ymin] = np.arange(len(need))
    ycol = slot[y - ymin]
    keep = ycol >= 0
    cell = (rcode[keep].astype(np.int64) * n_i + icode[keep]) * len(need) + ycol[keep]
    E = np.bincount(cell, weights=x[keep], minlength=n_r * n_i * len(need)) \
        .reshape(n_r, n_i, len(need))
    present = np.zeros((n_r, len(need)), dtype=bool)
    present[rcode[keep], ycol[keep]] = True

    def at(t: int):
        if not ymin <= t <= ymax:
            return np.zeros((n_r, n_i)), np.zeros(n_r, dtype=bool)
        j = slot[t - ymin]
        return E[:, :, j], present[:, j]

    frames = []
    for s in shocks:
        Eb, pb = at(s - 1)
        Es, ps = at(s)
        Ea, pa = at(s + 1)
        res = _mix_phase(Eb, Es, pb, ps)
        rcv = _mix_phase(Es, Ea, ps, pa)
        frames.append(pd.DataFrame({
            "_region": np.arange(n_r), year: s,
            "exports_before": np.where(pb, Eb.sum(1), np.nan),
            "exports_shock": np.where(ps, Es.sum(1), np.nan),
            "exports_after": np.where(pa, Ea.sum(1), np.nan),
            "sensitivity": res["beta"], "sensitivity_recovery": rcv["beta"],
            "resistance": res["mix"], "recovery": rcv["mix"],
            "resistance_simple": res["simple"], "recovery_simple": rcv["simple"],
            "note": _notes([("resistance", res["reason"], _city_table(_RESIST)),
                            ("recovery", rcv["reason"], _city_table(_RECOVER))]),
        }))
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["_region", year], kind="stable", ignore_index=True)
    out.insert(0, region, rvals[out.pop("_region").to_numpy()])
    return out


@dataclass(frozen=True)
class _Span:
    ymin: int
    ymax: int


_CITY_REASONS = {
    1: "no record of the region for {base}",
    2: "no record of the region for {end}",
    3: "the region has no exports in {base}",
    4: "the change expected from the industry mix is exactly zero (resistance / recovery "
       "undefined; the simple variant may be defined)",
    5: "the national change is exactly zero (sensitivity and the simple variant undefined)",
    6: "the nation has no exports in {base}",
}


def _city_table(labels: dict[str, str]) -> dict[int, str]:
    return {code: text.format(**labels) for code, text in _CITY_REASONS.items()}


def _mix_phase(E0: np.ndarray, E1: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> dict:
    """Martin's measures of every region for one phase; E is (regions, industries)."""
    Er0, Er1 = E0.sum(1), E1.sum(1)
    Ei0, Ei1 = E0.sum(0), E1.sum(0)
    EN0, EN1 = Ei0.sum(), Ei1.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        g_i = np.where(Ei0 > 0, Ei1 / Ei0 - 1.0, 0.0)
        g_N = EN1 / EN0 - 1.0 if EN0 > 0 else np.nan
        dE = Er1 - Er0
        expected = E0 @ g_i
        expected_simple = g_N * Er0
        mix = np.where(expected != 0, (dE - expected) / np.abs(expected), np.nan)
        simple = np.where(expected_simple != 0,
                          (dE - expected_simple) / np.abs(expected_simple), np.nan)
        beta = np.where((Er0 > 0) & (g_N != 0), (dE / Er0) / g_N, np.nan)
    reason = np.select([~p0, ~p1, np.full(len(Er0), EN0 == 0), Er0 == 0,
                        np.full(len(Er0), g_N == 0), expected == 0],
                       [1, 2, 6, 3, 5, 4], default=_OK)
    bad = np.isin(reason, (1, 2, 3, 6))
    flat = bad | (reason == 5)
    return {"beta": np.where(flat, np.nan, beta), "mix": np.where(bad, np.nan, mix),
            "simple": np.where(flat, np.nan, simple), "reason": reason}
