r"""The virtual-agglomeration index from city indicators: entropy weights, location quotients.

::

    entropy_index(df, indicators=[...], negative=[...], by=None)  -> (index, weights)
    location_quotient(df, region=, sector=, employment=, target_sector=, by=None)

**Entropy-weight method.** For :math:`n` rows (city-years; the rows of one ``by`` group
when given) and indicators :math:`j`:

.. math::

    x'_{ij} &= \frac{x_{ij} - \min_i x_{ij}}{\max_i x_{ij} - \min_i x_{ij}}
        \quad\text{(negative indicators: } \frac{\max_i x_{ij} - x_{ij}}
        {\max_i x_{ij} - \min_i x_{ij}}\text{)} \\
    p_{ij} &= x'_{ij} / \textstyle\sum_i x'_{ij}, \qquad
    e_j = -\frac{1}{\ln n} \sum_i p_{ij} \ln p_{ij} \quad (0 \ln 0 = 0) \\
    w_j &= \frac{1 - e_j}{\sum_k (1 - e_k)}, \qquad
    \mathrm{index}_i = \sum_j w_j\, x'_{ij}

Min–max normalisation is used as it stands, with no small shift added to avoid zeros
(some papers add 0.0001 before taking logs; here :math:`0 \ln 0 = 0` makes that
unnecessary, and the index keeps its [0, 1] range). The index is relative to the rows it
is computed on: with ``by="year"`` each year is normalised on its own (comparisons across
cities within a year), without it the whole panel at once (comparisons over time too).

May import: numpy, pandas, vagg_bayes.errors, vagg_bayes.measures._checks.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import numpy as np
import pandas as pd

from vagg_bayes.errors import DataError
from vagg_bayes.measures._checks import (
    column_list,
    key_column,
    no_duplicates,
    numeric_column,
    require_columns,
    require_frame,
)

__all__ = ["entropy_index", "location_quotient"]


def _groups(df: pd.DataFrame, by: list[Hashable], func: str) -> tuple[np.ndarray, pd.Index]:
    """Group codes (0..G-1, sorted by key) and the group keys; one group when ``by`` is []."""
    if not by:
        return np.zeros(len(df), dtype=np.int64), pd.Index([None])
    for col in by:
        key_column(df, col, "by", func)
    codes = df.groupby(by, sort=True).ngroup().to_numpy()
    keys = df[by].drop_duplicates().set_index(by).sort_index().index
    return codes.astype(np.int64), keys


def entropy_index(
    df: pd.DataFrame,
    *,
    indicators: Iterable[Hashable],
    negative: Iterable[Hashable] = (),
    by: Hashable | Iterable[Hashable] | None = None,
    name: str = "entropy_index",
) -> tuple[pd.Series, pd.Series | pd.DataFrame]:
    r"""Combine indicators into one index by the entropy-weight method.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per unit (e.g. city-year) with the indicator columns.
    indicators : iterable of hashable
        The indicator columns (at least one); numeric, complete and finite.
    negative : iterable of hashable, default ()
        Indicators for which more is worse (e.g. the share of households offline): they
        are reversed in the normalisation. Each must be among ``indicators``.
    by : hashable or iterable of hashable, optional
        Compute the normalisation, the weights and the index within each group of these
        columns (e.g. ``"year"``). None (default): all rows together.
    name : str, default "entropy_index"
        Name of the returned index Series.

    Returns
    -------
    index : pandas.Series
        The index of every row of ``df`` (same index as ``df``), in [0, 1].
    weights : pandas.Series or pandas.DataFrame
        Without ``by``: the weight of each indicator (a Series indexed by indicator,
        summing to 1). With ``by``: a DataFrame with one row per group (indexed by the
        ``by`` values) and one column per indicator.

    Raises
    ------
    DataError
        A missing column; an indicator that is non-numeric, has missing or infinite
        values or is constant (within a ``by`` group: its entropy is undefined and it
        carries no information; drop it, or compute the index without ``by``); a
        ``negative`` name that is not an indicator; missing values in a ``by`` column.

    Notes
    -----
    The weights are data-driven: an indicator that varies more unevenly across the rows
    (lower entropy) gets more weight. A group with a single row has only constant
    indicators and is therefore an error.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [3.0, 1.0, 1.0]})
    >>> index, weights = entropy_index(df, indicators=["a", "b"])
    >>> round(float(weights["a"]), 4), round(float(weights["b"]), 4)
    (0.2961, 0.7039)
    """
    func = "entropy_index"
    df = require_frame(df, func)
    cols = column_list(indicators, "indicators", func)
    neg = column_list(negative, "negative", func)
    by_cols = column_list(by, "by", func)
    if not cols:
        raise DataError(f"{func}: indicators= is empty. Name at least one indicator column.")
    for c in cols:
        require_columns(df, {"indicators": c}, func)
    for c in by_cols:
        require_columns(df, {"by": c}, func)
    for c in neg:
        if c not in cols:
            raise DataError(
                f"{func}: negative indicator {c!r} is not among indicators= "
                f"({', '.join(map(repr, cols))}). Add it to indicators= or remove it from "
                "negative=."
            )
    columns = [numeric_column(df, c, "indicators", func) for c in cols]
    codes, keys = _groups(df, by_cols, func)
    n_groups = len(keys)
    # one indicator at a time on contiguous 1-D arrays; group minima and maxima by
    # reduceat over the rows sorted by group (every group has rows)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    n = np.bincount(codes, minlength=n_groups).astype(float)
    normalised, d = [], np.empty((n_groups, len(cols)))
    for j, (col, x) in enumerate(zip(cols, columns, strict=True)):
        xs = x[order]
        lo = np.minimum.reduceat(xs, starts)
        hi = np.maximum.reduceat(xs, starts)
        width = hi - lo
        if (width == 0).any():
            g = int(np.flatnonzero(width == 0)[0])
            where = "" if not by_cols else f" within the group {by_cols}={keys[g]!r}"
            raise DataError(
                f"{func}: indicator {col!r} is constant{where} (every value is "
                f"{lo[g]!r}): min-max normalisation divides by zero and a constant carries "
                "no information. Drop it from indicators=" + (
                    ", or compute the index without by=" if by_cols else "") + "."
            )
        xn = (hi[codes] - x if col in neg else x - lo[codes]) / width[codes]
        p = xn / np.bincount(codes, weights=xn, minlength=n_groups)[codes]
        positive = p > 0
        plogp = np.zeros_like(p)
        plogp[positive] = p[positive] * np.log(p[positive])  # 0 ln 0 = 0
        entropy = -np.bincount(codes, weights=plogp, minlength=n_groups) / np.log(n)
        d[:, j] = 1.0 - entropy
        normalised.append(xn)
    w = d / d.sum(axis=1, keepdims=True)
    total = np.zeros(len(df))
    for j, xn in enumerate(normalised):
        total += w[codes, j] * xn
    index = pd.Series(total, index=df.index, name=name)
    if not by_cols:
        return index, pd.Series(w[0], index=pd.Index(cols, name="indicator"), name="weight")
    weights = pd.DataFrame(w, index=keys, columns=pd.Index(cols, name="indicator"))
    return index, weights


def location_quotient(
    df: pd.DataFrame,
    *,
    region: Hashable,
    sector: Hashable,
    employment: Hashable,
    target_sector: Hashable | Iterable[Hashable],
    by: Hashable | Iterable[Hashable] | None = None,
) -> pd.DataFrame:
    r"""Location quotients of a sector's employment (e.g. ICT services) by region.

    .. math::

        LQ_r = \frac{E_{\mathrm{target},r} / E_r}{E_{\mathrm{target},N} / E_N}

    with :math:`E_r` the region's employment over all sectors and :math:`N` the sum over
    all regions (within each ``by`` group, e.g. year). Above 1: the sector is more
    concentrated in the region than in the nation.

    Parameters
    ----------
    df : pandas.DataFrame
        Long format: one row per region, sector (and ``by`` group) with its employment.
    region, sector, employment : hashable
        The names of those columns; ``employment`` numeric and >= 0.
    target_sector : hashable or iterable of hashable
        The sector label(s) that make up the target (several codes are added up, e.g.
        telecommunications, internet services and software for "digital economy").
    by : hashable or iterable of hashable, optional
        Columns within whose groups the nation is summed, e.g. ``"year"``.

    Returns
    -------
    pandas.DataFrame
        One row per region (and ``by`` group), sorted: the ``by`` columns, ``region``,
        ``target_employment``, ``total_employment``, ``lq`` and ``note`` (why ``lq`` is
        NaN: a region without employment, or no target-sector employment in the nation).
        A region without target-sector rows has ``lq`` 0.

    Raises
    ------
    DataError
        A missing column; missing, non-numeric, infinite or negative employment; two
        rows for the same region, sector (and ``by`` group); a ``target_sector`` that
        never occurs in the ``sector`` column.
    """
    func = "location_quotient"
    df = require_frame(df, func)
    by_cols = column_list(by, "by", func)
    require_columns(df, {"region": region, "sector": sector, "employment": employment}, func)
    for c in by_cols:
        require_columns(df, {"by": c}, func)
    key_column(df, region, "region", func)
    key_column(df, sector, "sector", func)
    for c in by_cols:
        key_column(df, c, "by", func)
    emp = numeric_column(df, employment, "employment", func, nonnegative=True)
    no_duplicates(df, [*by_cols, region, sector], func,
                  "Each region needs one row per sector: add up the employment of repeated "
                  "rows (groupby(...).sum()) or drop them.")
    targets = column_list(target_sector, "target_sector", func)
    present = set(df[sector].unique())
    missing = [t for t in targets if t not in present]
    if not targets or missing:
        shown = ", ".join(repr(v) for v in sorted(present, key=str)[:12])
        raise DataError(
            f"{func}: target_sector {missing or targets!r} does not occur in column "
            f"{sector!r} (sector=), whose values include {shown}. Pass the label(s) of the "
            "target sector exactly as they appear there."
        )
    work = df[[*by_cols, region]].copy()
    work["_total"] = emp
    work["_target"] = np.where(df[sector].isin(targets).to_numpy(), emp, 0.0)
    out = work.groupby([*by_cols, region], sort=True, as_index=False)[["_target", "_total"]] \
        .sum()
    if by_cols:
        nation = out.groupby(by_cols, sort=False)[["_target", "_total"]].transform("sum")
    else:
        nation = out[["_target", "_total"]].sum().to_frame().T.loc[[0] * len(out)] \
            .reset_index(drop=True)
    t_r, e_r = out["_target"].to_numpy(), out["_total"].to_numpy()
    t_n, e_n = nation["_target"].to_numpy(), nation["_total"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        lq = (t_r / e_r) / (t_n / e_n)
    note = np.select([e_r == 0, t_n == 0],
                     ["no employment in the region (share undefined)",
                      "no target-sector employment in the nation (share of the nation is 0)"],
                     default="")
    lq = np.where(note == "", lq, np.nan)
    out = out.rename(columns={"_target": "target_employment", "_total": "total_employment"})
    out["lq"] = lq
    out["note"] = note
    return out
