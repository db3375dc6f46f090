r"""Raw records, the material the measures are built from, and a simulator of them.

Users start from customs records (firm, industry, year, export value) and city yearbook
indicators, not from a resilience index. :class:`RawRecords` holds those tables and the
names of their columns; :func:`simulate_raw` draws them consistently with the synthetic
panel of :func:`~vagg_bayes.data.simulate.simulate_panel` (same arguments, same seed:
the same panel and truth), so that :func:`vagg_bayes.measures.build_indices` can rebuild
the panel's outcome and treatment from raw records and the chain from raw records to a
posterior can be checked against the truth.

May import: numpy, pandas, vagg_bayes.data.simulate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["INDICATORS", "RawRecords", "rescale_truth", "simulate_raw"]

#: The simulated city indicators: name -> (intercept, slope on va, relative noise factor,
#: direction). A value is (intercept + slope * va) * exp(noise * factor * z), z ~ N(0, 1),
#: for "+" indicators and (intercept - slope * va) * exp(...) for "-" ones.
INDICATORS: dict[str, tuple[float, float, float, str]] = {
    "internet_users": (10.0, 90.0, 1.0, "+"),  # broadband subscribers per 100 people
    "mobile_users": (60.0, 120.0, 0.6, "+"),  # mobile subscribers per 100 people
    "telecom_revenue_pc": (300.0, 3000.0, 1.5, "+"),  # telecom revenue per head, yuan
    "software_revenue": (1.0, 800.0, 2.0, "+"),  # software revenue, 100 million yuan
    "ecommerce_sales": (5.0, 1500.0, 2.5, "+"),  # e-commerce sales, 100 million yuan
    "digital_finance": (150.0, 250.0, 0.8, "+"),  # digital inclusive finance index
    "offline_share": (65.0, 70.0, 1.0, "-"),  # % of households without internet access
}
_NATIONAL_GROWTH = 0.08  # log growth of exports in a normal year
_NATIONAL_SHOCK_GROWTH = -0.12  # ... and in a shock year
_INDUSTRY_GROWTH_SD = 0.05
_LOG_EXPORTS_BASE = 6.0  # log thousand USD at the mean firm size
_LOG_EXPORTS_SIZE = 0.9
_LOG_EXPORTS_SD = 1.0
_ICT_SHARE = 0.018  # ICT share of employment at va = 0.15
_ICT_SHARE_SD = 0.15


@dataclass(frozen=True)
class RawRecords:
    """Raw records and the names of their columns.

    Parameters
    ----------
    exports : pandas.DataFrame
        One row per firm-year: firm, city, industry, year and export value.
    indicators : pandas.DataFrame
        One row per city-year: city, year and the digital-economy indicators.
    employment : pandas.DataFrame, optional
        Long format, one row per city, year and sector with its employment (for
        location quotients).
    firm, city, industry, year, value : str
        Column names in ``exports`` (``city`` and ``year`` also in ``indicators`` and
        ``employment``); ``value`` is the export value.
    indicator_columns : tuple of str
        The indicator columns of ``indicators`` that make up the index.
    negative : tuple of str
        Those among them for which more is worse.
    sector, employment_value, target_sector : str
        Columns of ``employment`` and the label of the digital-economy sector.
    """

    exports: pd.DataFrame
    indicators: pd.DataFrame
    employment: pd.DataFrame | None = None
    firm: str = "firm_id"
    city: str = "city_id"
    industry: str = "industry"
    year: str = "year"
    value: str = "exports"
    indicator_columns: tuple[str, ...] = tuple(INDICATORS)
    negative: tuple[str, ...] = tuple(k for k, v in INDICATORS.items() if v[3] == "-")
    sector: str = "sector"
    employment_value: str = "employment"
    target_sector: str = "ict"
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


def simulate_raw(
    n_firms: int = 20_000,
    n_years: int = 10,
    n_cities: int = 280,
    n_provinces: int = 30,
    *,
    first_year: int = 2011,
    seed: int = 0,
    n_industries: int = 20,
    indicator_noise: float = 0.05,
    **panel_options: Any,
) -> tuple[RawRecords, pd.DataFrame, dict[str, Any]]:
    r"""Raw export records and city indicators behind a simulated panel.

    Calls :func:`~vagg_bayes.data.simulate.simulate_panel` with the same arguments (so
    the panel and truth are exactly those of that call) and draws, from a separate
    random stream of the same seed:

    - **export records** for every firm from the year before the panel's first year
      (a base year) to its last: each firm gets an industry (``n_industries``, of
      unequal sizes, independent of city and everything else), a base-year log export
      value :math:`6 + 0.9\,(\mathrm{size}_{i0} - 4.9) + N(0, 1)` (thousand USD), and
      grows each year by

      .. math::

          \Delta \ln X_{it} = g_{k(i)t} + (\mathrm{resilience}_{it} - \overline{
              \mathrm{resilience}}_t), \qquad g_{kt} = \mu_t + N(0, 0.05^2)

      with national growth :math:`\mu_t` = 0.08 in normal years and -0.12 in the
      panel's shock years. So the firm-year resilience index rebuilt from the records
      (:func:`~vagg_bayes.measures.annual_resilience`, log-difference form: the firm's
      log change minus its industry's without it) is the panel's ``resilience`` minus a
      year constant and a small industry-year term (the industry's export-weighted
      mean of the same deviations); the effects of ``va`` on it are those of the truth.
    - **city indicators** per city-year (cities that hold firms): seven
      digital-economy indicators, each an affine function of the city-year ``va`` with
      multiplicative noise (:data:`INDICATORS`; ``offline_share`` falls with ``va`` and
      is a negative indicator), so the entropy index rebuilt from them is nearly an
      affine function of ``va`` (correlation above 0.99 at the default noise).
    - **employment** by city, year and sector (``"ict"``, ``"other"``): the ICT share
      is proportional to ``va`` (0.018 at va = 0.15) with lognormal noise (SD 0.15).

    The panel is balanced and exports are positive in every firm-year, so the panel's
    ``survival`` outcome is not rebuilt from these records (every firm keeps exporting).

    Parameters
    ----------
    n_firms, n_years, n_cities, n_provinces, first_year, seed
        As :func:`~vagg_bayes.data.simulate.simulate_panel`.
    n_industries : int, default 20
        Number of industries.
    indicator_noise : float, default 0.05
        Scale of the multiplicative noise of the indicators (times each indicator's
        factor in :data:`INDICATORS`); 0 makes every indicator an exact affine function
        of ``va``.
    **panel_options
        Passed on to ``simulate_panel`` (``effect_scale``, latent scales, ...).

    Returns
    -------
    raw : RawRecords
        ``raw.exports`` (columns ``firm_id, city_id, industry, year, exports``; industry
        codes 1 to ``n_industries``), ``raw.indicators`` (``city_id, year`` and the
        indicator columns), ``raw.employment`` (``city_id, year, sector, employment``).
    panel : pandas.DataFrame
        The panel of ``simulate_panel`` (unchanged).
    truth : dict
        Its truth, plus ``truth["raw"]``: the settings above (industries, growth,
        indicator formulas and noise, employment shares).

    Examples
    --------
    >>> raw, panel, truth = simulate_raw(n_firms=300, n_years=4, n_cities=40, seed=1)
    >>> len(raw.exports) == 300 * 5
    True
    """
    from vagg_bayes.data.simulate import simulate_panel

    if isinstance(n_industries, bool) or not isinstance(n_industries, int | np.integer) \
            or n_industries < 1:
        raise ValueError(f"n_industries must be an int >= 1; got {n_industries!r}.")
    if not isinstance(indicator_noise, int | float) or not np.isfinite(indicator_noise) \
            or indicator_noise < 0:
        raise ValueError(f"indicator_noise must be a finite number >= 0; got "
                         f"{indicator_noise!r}.")
    panel, truth = simulate_panel(n_firms, n_years, n_cities, n_provinces,
                                  first_year=first_year, seed=seed, **panel_options)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    F = int(panel["firm_id"].nunique())
    T = len(panel) // F
    years = panel["year"].to_numpy()[:T]
    res = panel["resilience"].to_numpy().reshape(F, T)
    size0 = panel["size_ln"].to_numpy().reshape(F, T)[:, 0]
    firm_city = panel["city_id"].to_numpy().reshape(F, T)[:, 0]
    shock = panel["shock"].to_numpy()[:T]

    # ---- export records --------------------------------------------------------------
    K = int(n_industries)
    industry = rng.choice(K, F, p=rng.dirichlet(np.full(K, 5.0)))
    ln0 = _LOG_EXPORTS_BASE + _LOG_EXPORTS_SIZE * (size0 - 4.9) \
        + rng.normal(0.0, _LOG_EXPORTS_SD, F)
    national = np.where(shock == 1, _NATIONAL_SHOCK_GROWTH, _NATIONAL_GROWTH)
    g = national[None, :] + rng.normal(0.0, _INDUSTRY_GROWTH_SD, (K, T))
    growth = g[industry] + (res - res.mean(axis=0))
    lnx = np.concatenate([ln0[:, None], ln0[:, None] + np.cumsum(growth, axis=1)], axis=1)
    exports = pd.DataFrame({
        "firm_id": np.repeat(np.arange(F, dtype=np.int64), T + 1),
        "city_id": np.repeat(firm_city.astype(np.int64), T + 1),
        "industry": np.repeat(industry.astype(np.int64) + 1, T + 1),
        "year": np.tile(np.concatenate([[years[0] - 1], years]).astype(np.int64), F),
        "exports": np.exp(lnx).ravel(),
    })

    # ---- city indicators -------------------------------------------------------------
    cy = panel[["city_id", "year", "va"]].drop_duplicates(["city_id", "year"]) \
        .sort_values(["city_id", "year"], ignore_index=True)
    va = cy["va"].to_numpy()
    indicators = cy[["city_id", "year"]].copy()
    for name, (intercept, slope, factor, sign) in INDICATORS.items():
        base = intercept + slope * va if sign == "+" else intercept - slope * va
        noise = np.exp(indicator_noise * factor * rng.standard_normal(len(va)))
        indicators[name] = np.maximum(base, 0.5) * noise

    # ---- employment by sector ----------------------------------------------------------
    cities = cy["city_id"].to_numpy()
    city_codes, city_index = np.unique(cities, return_inverse=True)
    total0 = np.exp(rng.normal(12.3, 0.7, len(city_codes)))
    t_idx = cy["year"].to_numpy() - years[0]
    total = np.round(total0[city_index] * np.exp(0.01 * t_idx))
    share = np.clip(_ICT_SHARE * (va / 0.15) * np.exp(rng.normal(0.0, _ICT_SHARE_SD, len(va))),
                    1e-4, 0.5)
    ict = np.round(total * share)
    employment = pd.DataFrame({
        "city_id": np.repeat(cities, 2),
        "year": np.repeat(cy["year"].to_numpy(), 2),
        "sector": np.tile(np.array(["ict", "other"], dtype=object), len(cy)),
        "employment": np.column_stack([ict, total - ict]).ravel(),
    })

    truth = dict(truth)
    truth["raw"] = {
        "n_industries": K,
        "base_year": int(years[0] - 1),
        "national_growth": _NATIONAL_GROWTH,
        "national_shock_growth": _NATIONAL_SHOCK_GROWTH,
        "industry_growth_sd": _INDUSTRY_GROWTH_SD,
        "exports": "dln X_it = g_kt + (resilience_it - mean_t resilience); X in thousand "
                   "USD; every firm exports in every year",
        "indicator_noise": float(indicator_noise),
        "indicators": {name: {"intercept": v[0], "slope_on_va": v[1], "noise_factor": v[2],
                              "direction": v[3]} for name, v in INDICATORS.items()},
        "ict_share_at_va_0.15": _ICT_SHARE,
        "ict_share_sd": _ICT_SHARE_SD,
    }
    raw = RawRecords(exports=exports, indicators=indicators, employment=employment,
                     meta={"source": "simulate_raw", "seed": int(seed)})
    return raw, panel, truth


def rescale_truth(truth: dict[str, Any], slope: float) -> dict[str, Any]:
    """Rescale a simulated panel's truth to effects per unit of a rebuilt treatment index.

    When the treatment is replaced by an index that is (nearly) an affine function of
    the simulated ``va`` (:func:`vagg_bayes.measures.build_indices`), an effect per unit
    of the index is the effect per unit of ``va`` times ``slope``, the slope of ``va``
    on the index (``BuiltIndices.treatment_slope``). This returns a copy of ``truth``
    with every effect of ``va`` multiplied by ``slope``: on resilience ``direct``,
    ``indirect``, ``total`` and each mediator's ``a`` and ``indirect``; each
    ``mediators[m]["a"]``; the survival logit's ``direct`` and ``a_times_b``; the
    survival effects on the probability scale to first order (exact for small effects);
    the ``heterogeneity`` block where present. ``truth["rescaled_by"]`` records
    ``slope``.

    Parameters
    ----------
    truth : dict
        The truth of ``simulate_panel`` or ``simulate_raw``.
    slope : float
        Units of ``va`` per unit of the rebuilt index.

    Returns
    -------
    dict
        The rescaled copy (``truth`` itself is unchanged).
    """
    import copy

    out = copy.deepcopy(truth)
    k = float(slope)
    res = out.get("resilience", {})
    for key in ("direct", "indirect", "total"):
        if key in res:
            res[key] *= k
    for med in res.get("mediators", {}).values():
        for key in ("a", "indirect"):
            if key in med:
                med[key] *= k
    for med in out.get("mediators", {}).values():
        if "a" in med:
            med["a"] *= k
    surv = out.get("survival", {})
    for key, value in list(surv.items()):
        if key != "logit" and isinstance(value, int | float) and key != "family":
            surv[key] = value * k
    logit = surv.get("logit", {})
    if "direct" in logit:
        logit["direct"] *= k
    for name in list(logit.get("a_times_b", {})):
        logit["a_times_b"][name] *= k
    for levels in out.get("heterogeneity", {}).values():
        for effects in levels.values():
            for key in effects:
                effects[key] *= k
    out["rescaled_by"] = k
    return out
