"""From raw records to a panel's outcome and treatment columns, in one call.

``build_indices(raw, panel=None)`` rebuilds the firm-year resilience index from export
records (:func:`~vagg_bayes.measures.annual_resilience`) and the virtual-agglomeration
index from city indicators (:func:`~vagg_bayes.measures.entropy_index`, plus the
location quotient of ICT employment when the records have employment), and either
returns them as a firm-year table or puts them into a given panel in place of its
outcome and treatment columns.

May import: numpy, pandas, vagg_bayes.data.raw, vagg_bayes.errors, vagg_bayes.measures.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.data.raw import RawRecords
from vagg_bayes.errors import DataError
from vagg_bayes.measures._checks import no_duplicates, require_columns
from vagg_bayes.measures.index import entropy_index, location_quotient
from vagg_bayes.measures.resilience import annual_resilience

__all__ = ["BuiltIndices", "build_indices"]


@dataclass(frozen=True)
class BuiltIndices:
    """What :func:`build_indices` returns.

    Attributes
    ----------
    panel : pandas.DataFrame
        The firm-year rows with the rebuilt outcome and treatment (and location
        quotient) columns: the given panel with those columns replaced, or, without a
        panel, the export records' firm, city, industry and year with them.
    resilience : pandas.DataFrame
        The output of :func:`~vagg_bayes.measures.annual_resilience` (every record,
        with the ``note`` of each undefined value).
    index : pandas.DataFrame
        One row per city-year: city, year, the treatment index and (with employment
        records) the location quotient.
    weights : pandas.Series or pandas.DataFrame
        The entropy weights of the indicators (per group with ``by``).
    treatment_slope : float or None
        With a panel that had the treatment column: the slope of the panel's original
        treatment on the rebuilt index (least squares over the panel's rows). An effect
        per unit of the original treatment times this slope is the effect per unit of
        the rebuilt index (see :func:`vagg_bayes.data.raw.rescale_truth`).
    dropped : int
        Rows dropped because their rebuilt outcome or treatment is undefined.
    """

    panel: pd.DataFrame
    resilience: pd.DataFrame
    index: pd.DataFrame
    weights: pd.Series | pd.DataFrame
    treatment_slope: float | None
    dropped: int

    def __str__(self) -> str:
        w = self.weights
        shown = (", ".join(f"{k} {v:.3f}" for k, v in w.items())
                 if isinstance(w, pd.Series) else f"{w.shape[0]} groups")
        lines = [f"Indices built from raw records: {len(self.panel)} firm-year rows "
                 f"({self.dropped} dropped with an undefined index); entropy weights: "
                 f"{shown}."]
        if self.treatment_slope is not None:
            lines.append(f"One unit of the rebuilt index = {self.treatment_slope:.4f} units "
                         "of the panel's original treatment.")
        return "\n".join(lines)


def build_indices(
    raw: RawRecords,
    *,
    panel: pd.DataFrame | None = None,
    form: str = "logdiff",
    winsorize: float | tuple[float, float] | None = None,
    by: Hashable | None = None,
    outcome: str = "resilience",
    treatment: str = "va",
    lq: str | None = "va_lq",
    dropna: bool = True,
) -> BuiltIndices:
    """Rebuild a panel's resilience and virtual-agglomeration columns from raw records.

    Parameters
    ----------
    raw : RawRecords
        Export records, city indicators (and optionally employment by sector) with
        their column names (:class:`vagg_bayes.data.raw.RawRecords`; what
        :func:`vagg_bayes.data.raw.simulate_raw` returns).
    panel : pandas.DataFrame, optional
        A firm-year panel with ``raw.firm``, ``raw.city`` and ``raw.year`` columns: its
        ``outcome`` and ``treatment`` columns are replaced (or added) by the rebuilt
        ones, matched on firm-year and city-year; everything else is kept as it is.
    form : {"logdiff", "ratio"}, default "logdiff"
        Form of the firm-year resilience index (:func:`annual_resilience`).
    winsorize : float or (float, float), optional
        Winsorisation of the resilience index within each year.
    by : hashable, optional
        Compute the entropy index within groups of this indicator column (e.g. the
        year); default: over all city-years at once, so the index is comparable over
        time.
    outcome, treatment : str, default "resilience", "va"
        Names of the rebuilt columns.
    lq : str or None, default "va_lq"
        Name of the location-quotient column (needs ``raw.employment``); None: none.
    dropna : bool, default True
        Drop the rows whose rebuilt outcome or treatment is undefined (a firm's first
        year, a firm alone in its industry, a city-year without indicators); their
        count is ``dropped``.

    Returns
    -------
    BuiltIndices

    Raises
    ------
    DataError
        Bad records (from the measures), or a panel without the key columns.
    """
    if not isinstance(raw, RawRecords):
        raise DataError(
            "build_indices needs a vagg_bayes.data.raw.RawRecords (export records and city "
            f"indicators with their column names); got {type(raw).__name__}. Build one with "
            "RawRecords(exports=..., indicators=..., firm=..., city=..., ...)."
        )
    for frame in (raw.indicators, raw.employment):
        if frame is not None:
            require_columns(frame, {"city": raw.city, "year": raw.year}, "build_indices")
    no_duplicates(raw.indicators, [raw.city, raw.year], "build_indices",
                  "The indicators need one row per city-year: drop or merge the repeated "
                  "rows.")
    res = annual_resilience(raw.exports, firm=raw.firm, industry=raw.industry,
                            year=raw.year, exports=raw.value, form=form,
                            winsorize=winsorize)
    index, weights = entropy_index(raw.indicators, indicators=raw.indicator_columns,
                                   negative=raw.negative, by=by, name=treatment)
    city_year = raw.indicators[[raw.city, raw.year]].copy()
    city_year[treatment] = index.to_numpy()
    if raw.employment is not None and lq is not None:
        q = location_quotient(raw.employment, region=raw.city, sector=raw.sector,
                              employment=raw.employment_value,
                              target_sector=raw.target_sector, by=raw.year)
        city_year[lq] = _lookup(q.set_index([raw.year, raw.city])["lq"],
                                city_year[[raw.year, raw.city]])
    res_values = res.set_index([raw.firm, raw.year])["resilience"]
    cy_frame = city_year.set_index([raw.city, raw.year])
    extra = list(cy_frame.columns)
    slope = None
    if panel is None:
        out = raw.exports[[raw.firm, raw.city, raw.industry, raw.year]].copy()
    else:
        missing = [c for c in (raw.firm, raw.city, raw.year) if c not in panel.columns]
        if missing:
            raise DataError(
                f"build_indices: the panel has no column {missing[0]!r}, needed to match "
                f"the rebuilt indices to its rows (firm {raw.firm!r}, city {raw.city!r}, "
                f"year {raw.year!r} of the raw records). Rename the panel's columns or set "
                "the names in RawRecords."
            )
        out = panel.copy()
    out[outcome] = _lookup(res_values, out[[raw.firm, raw.year]])
    old = out[treatment].to_numpy(dtype=float) if treatment in out.columns else None
    for col in extra:
        out[col] = _lookup(cy_frame[col], out[[raw.city, raw.year]])
    n_before = len(out)
    if dropna:
        keep = out[[outcome, treatment]].notna().all(axis=1).to_numpy()
        out = out.loc[keep].reset_index(drop=True)
        if old is not None:
            old = old[keep]
    if old is not None and panel is not None:
        new = out[treatment].to_numpy(dtype=float)
        ok = np.isfinite(old) & np.isfinite(new)
        if ok.sum() > 1 and np.var(new[ok]) > 0:
            slope = float(np.cov(old[ok], new[ok])[0, 1] / np.var(new[ok], ddof=1))
    return BuiltIndices(panel=out, resilience=res, index=city_year.reset_index(drop=True),
                        weights=weights, treatment_slope=slope, dropped=n_before - len(out))


def _lookup(values: pd.Series, keys: pd.DataFrame) -> np.ndarray:
    """``values`` (indexed by a MultiIndex) at each row of ``keys`` (NaN where absent)."""
    return values.reindex(pd.MultiIndex.from_frame(keys)).to_numpy(dtype=float)
