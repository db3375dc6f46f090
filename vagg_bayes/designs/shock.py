r"""The shock (event-study) design: treatment measured before a shock, followed year by year.

An export shock (the 2008-09 crisis, the 2018 tariff war) hits every firm in year
:math:`s`; firms differ in their exposure :math:`D_i`, the treatment (virtual
agglomeration) measured *before* the shock, so the shock cannot have moved it. The
event study fits

.. math::

    y_{it} = \alpha_i + \lambda_t + \sum_{k \ne -1} \beta_k\, D_i\, 1[t = s + k]
        + x_{it}'\gamma + \varepsilon_{it}

with unit (firm) effects :math:`\alpha_i` (``[model] unit_effects``), year effects
:math:`\lambda_t`, the spec's group (city) and group-time effects, and the year before
the shock (:math:`k = -1`) as the reference. :math:`\beta_k` is how much more (per unit
of pre-shock treatment) the outcome differs from its level in the reference year
:math:`k` years after the shock (lags, :math:`k \ge 0`) or before it (leads,
:math:`k \le -2`). Under parallel trends (units with high and low :math:`D_i` would have
moved alike without the shock) and no anticipation (the shock did not act before
:math:`s`), every lead is zero: the leads are the pre-trend check.

The event-time regressors :math:`D_i 1[t = s + k]` are ordinary columns of a panel built
here (:func:`event_study_panel`); :class:`~vagg_bayes.analysis.Analysis` fits them with
the usual Gaussian machinery (collapsed or nested models), and
:func:`event_study_result` turns the coefficients into effects:

- ``event[k]``: :math:`\beta_k` for every event time but the reference;
- ``total``: the post-shock average effect :math:`\frac{1}{K}\sum_{k=0}^{K-1} \beta_k`
  (every post-shock event time weighted equally);
- the pre-trend check (:func:`pre_trend_check`): each lead's 94 % HDI, the joint check
  (is zero inside the leads' 94 % joint posterior region?) and
  :math:`P(\max_k |\beta_k| < \text{band})` over the leads.

May import: numpy, pandas, matplotlib (lazily), vagg_bayes.errors, vagg_bayes.spec,
vagg_bayes.data.panel, vagg_bayes.bayes.summary, vagg_bayes.report.result.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vagg_bayes.bayes.summary import HDI_PROB, summarize_draws
from vagg_bayes.data.panel import validate_panel
from vagg_bayes.errors import DataError, DataWarning
from vagg_bayes.report.result import OUTCOME, EstimateResult
from vagg_bayes.spec import Spec

__all__ = ["EventStudy", "event_study_panel", "event_study_result", "plot_event_study",
           "pre_trend_check"]

REFERENCE = -1  # event time of the reference year (the year before the shock)
BAND_SD_SHARE = 0.1  # default pretrend band: this share of the outcome's SD per SD of D


@dataclass(frozen=True)
class EventStudy:
    """The event-study panel of a shock-design spec, and how to read its fit.

    Attributes
    ----------
    frame : DataFrame
        The validated panel (the spec's columns) plus one column per event time.
    spec : Spec
        The spec the frame is fitted with: the k = 0 column is the treatment, the other
        event-time columns come before the spec's controls (with ``unit_effects``
        ``"random"`` or ``"none"`` followed by ``<treatment>_pre``, :math:`D_i` itself,
        whose level no unit effect absorbs then); no ``shock_year``, no graph.
    shock_year : int
    columns : dict of int -> str
        Event time -> its column in ``frame`` (the reference year has none).
    exposure : ndarray (n,)
        Each row's pre-shock treatment :math:`D_i`.
    band : float
        Leads within +-band count as no pre-trend (``[design] pretrend_band``; default
        a tenth of the outcome's SD per SD of the pre-shock treatment, both over rows).
    dropped_units : int
        Units left out because their pre-shock treatment is not observed.
    """

    frame: pd.DataFrame
    spec: Spec
    shock_year: int
    columns: dict[int, str]
    exposure: np.ndarray
    band: float
    dropped_units: int = 0

    @property
    def event_times(self) -> list[int]:
        """Event times with a coefficient, ascending (the reference omitted)."""
        return sorted(self.columns)

    @property
    def leads(self) -> list[int]:
        """Event times before the reference year (the pre-trend check)."""
        return [k for k in self.event_times if k < REFERENCE]

    @property
    def lags(self) -> list[int]:
        """Event times from the shock year on."""
        return [k for k in self.event_times if k >= 0]


def _years(panel: pd.DataFrame, spec: Spec, source: str) -> np.ndarray:
    """Read the time column as integer years (a DataError when it is not)."""
    t = panel[spec.time]
    values = pd.to_numeric(t, errors="coerce") if not pd.api.types.is_bool_dtype(t) else None
    if values is None or values.isna().any() or not np.all(np.mod(values, 1) == 0):
        shown = ", ".join(map(repr, pd.unique(t)[:3]))
        raise DataError(
            f"[data].time column '{spec.time}' in {source} must hold integer years for "
            f"[design].shock_year = {spec.shock_year}; it holds e.g. {shown}. Convert it "
            "to years (e.g. 2018) or remove [design].shock_year.")
    return values.to_numpy(dtype=np.int64)


def _column_name(name: str, taken: set[str]) -> str:
    """Return ``name``, prefixed with underscores until no data column has it."""
    while name in taken:
        name = "_" + name
    return name


def event_study_panel(data: pd.DataFrame, spec: Spec, *, source: str = "data"
                      ) -> EventStudy:
    """Build the event-study panel of a spec with ``shock_year``.

    Parameters
    ----------
    data : DataFrame
        The user's panel; not modified.
    spec : Spec
        With ``shock_year`` (and therefore ``unit`` and ``time``) set.
    source : str, default "data"
        The data's name in messages.

    Returns
    -------
    EventStudy

    Raises
    ------
    DataError
        When the time column does not hold integer years, the shock year is outside the
        data's years or has no rows, the year before the shock (the reference) has no
        rows, or no unit has its pre-shock treatment observed.

    Warns
    -----
    DataWarning
        When units lack the pre-shock treatment (they are left out) and when no year
        lies before the reference year (no leads: the pre-trend cannot be checked).
    """
    s = spec.shock_year
    if s is None:
        raise ValueError("event_study_panel needs a spec with shock_year set.")
    # the usual checks, except within-unit variation of the treatment: the design's
    # regressors are the event-time columns (checked when the event panel is fitted)
    panel = validate_panel(data, spec.with_(unit_effects="none"), source=source)
    years = _years(panel, spec, source)
    seen = np.unique(years)
    first, last = int(seen[0]), int(seen[-1])
    fix = (f"Set [design].shock_year (or --shock-year) to a year with data before it "
           f"(between {first + 1} and {last}), or use data that cover the shock.")
    if not first <= s <= last:
        raise DataError(
            f"[design].shock_year = {s} is outside the years of '{spec.time}' in {source} "
            f"({first}-{last}). {fix}")
    if s not in seen:
        raise DataError(f"No row of {source} has '{spec.time}' = {s}, the shock year. {fix}")
    if s - 1 not in seen:
        raise DataError(
            f"No row of {source} has '{spec.time}' = {s - 1}, the year before the shock "
            f"({s}): the shock design needs a pre-shock year, its reference year (the "
            f"treatment is measured then and every event-time effect is relative to it). "
            f"{fix}")
    keys = [spec.group, spec.unit] if spec.group else [spec.unit]
    unit_id = panel.groupby(keys, sort=False, observed=True).ngroup().to_numpy()
    treat = panel[spec.treatment].to_numpy(dtype=float)
    if spec.shock_baseline == "year_before":
        pre = years == s - 1
        what = f"in {s - 1}"
    else:
        pre = years < s
        what = f"before {s}"
    n_units = int(unit_id.max()) + 1
    sums = np.bincount(unit_id[pre], weights=treat[pre], minlength=n_units)
    counts = np.bincount(unit_id[pre], minlength=n_units)
    observed = counts > 0
    if not observed.any():
        raise DataError(f"No unit of '{spec.unit}' in {source} has its treatment "
                        f"'{spec.treatment}' observed {what}. {fix}")
    dropped = int((~observed).sum())
    if dropped:
        warnings.warn(
            f"{dropped} of {n_units} units of '{spec.unit}' in {source} have no row {what}, "
            f"so their pre-shock treatment is unknown; they are left out of the shock "
            f"design. Use shock_baseline = \"pre_mean\" under [design] to measure it over "
            f"every pre-shock year.", DataWarning, stacklevel=2)
    keep = observed[unit_id]
    exposure = (sums / np.maximum(counts, 1))[unit_id][keep]
    panel = panel.loc[keep].reset_index(drop=True)
    years = years[keep]
    event = years - s
    taken = set(panel.columns) | set(data.columns)
    columns = {}
    for k in np.unique(event):
        if k == REFERENCE:
            continue
        columns[int(k)] = name = _column_name(f"{spec.treatment}_pre:t{k:+d}", taken)
        panel[name] = exposure * (event == k)
    if not any(k < REFERENCE for k in columns):
        warnings.warn(
            f"No year of {source} lies before {s - 1}, the reference year of the shock "
            f"design: there are no leads, so the pre-trend cannot be checked. Use data "
            f"that start earlier.", DataWarning, stacklevel=2)
    others = [columns[k] for k in sorted(columns) if k != 0]
    if spec.unit_effects in ("random", "none"):
        # no unit effects absorb D_i's level (as "fixed" does, or its unit means under
        # "within"): without it the level gap in the reference year would load on every
        # event-time coefficient
        level = _column_name(f"{spec.treatment}_pre", taken)
        panel[level] = exposure
        others.append(level)
    fitted = spec.with_(treatment=columns[0], controls=(*others, *spec.controls),
                        shock_year=None, graph=None)
    band = spec.pretrend_band
    if band is None:  # a lead worth a tenth of the outcome's SD per SD of exposure
        sd_exposure = float(np.std(exposure))
        band = BAND_SD_SHARE * float(np.std(panel[spec.outcome].to_numpy(dtype=float)))
        band = band / sd_exposure if sd_exposure > 0 else band
    return EventStudy(frame=panel, spec=fitted, shock_year=int(s), columns=columns,
                      exposure=exposure, band=float(band), dropped_units=dropped)


def pre_trend_check(leads: dict[str, np.ndarray], band: float) -> tuple[pd.DataFrame, dict]:
    r"""Check the pre-trend of an event study from the draws of its leads.

    Parameters
    ----------
    leads : dict of str -> ndarray (chain, draw)
        ``event[k]`` draws of every lead (event time before the reference year).
    band : float
        Leads within +-band count as no pre-trend.

    Returns
    -------
    table : DataFrame
        ``check, estimate, hdi_low, hdi_high, passed, detail``: one row per lead (its
        posterior mean and 94 % HDI; passes when the HDI covers zero), ``joint`` and
        ``band``.
    verdict : dict
        Plain JSON: ``passed`` (the joint check; None without leads), ``joint_prob``,
        ``prob_within_band``, ``band``, ``leads_cover_zero`` and the rule.

    Notes
    -----
    The joint check asks whether zero lies inside the leads' 94 % joint posterior
    region, measured by the Mahalanobis distance :math:`d^2(b) = (b - \mu)'
    \Sigma^{-1} (b - \mu)` with the posterior mean :math:`\mu` and covariance
    :math:`\Sigma` of the leads: ``joint_prob`` :math:`= P(d^2(\beta) \ge d^2(0))`, the
    share of draws at least as far from the centre as zero; it passes when that exceeds
    6 %. The verdict (``passed``) asks for both: zero inside the joint region and inside
    every lead's HDI. The joint region alone can miss a steady trend when the leads are
    strongly correlated (they share the reference year); the HDIs alone raise more false
    alarms the more leads there are; a failure of one lead's HDI with a joint_prob well
    above 6 % among many leads may be chance, so the table shows both parts.
    ``prob_within_band`` is :math:`P(\max_k |\beta_k| < \text{band})`.
    """
    rule = (f"passes when zero lies inside the leads' {HDI_PROB:.0%} joint posterior "
            f"region (joint_prob > {1 - HDI_PROB:.2f}) and inside every lead's "
            f"{HDI_PROB:.0%} HDI")
    if not leads:
        verdict = {"passed": None, "joint_prob": None, "prob_within_band": None,
                   "band": band, "leads_cover_zero": {}, "rule": rule,
                   "note": "no leads (no year before the reference year): not checkable"}
        return pd.DataFrame(columns=["check", "estimate", "hdi_low", "hdi_high", "passed",
                                     "detail"]), verdict
    summary = summarize_draws(leads, "check")
    flat = np.column_stack([np.asarray(leads[n], dtype=float).reshape(-1) for n in leads])
    mu = flat.mean(axis=0)
    cov = np.atleast_2d(np.cov(flat, rowvar=False))
    prec = np.linalg.pinv(cov)
    centred = flat - mu
    d2 = np.einsum("si,ij,sj->s", centred, prec, centred)
    joint_prob = float(np.mean(d2 >= mu @ prec @ mu))
    within = float(np.mean(np.all(np.abs(flat) < band, axis=1)))
    covers = {n: bool(lo <= 0.0 <= hi) for n, lo, hi in
              zip(summary["check"], summary["hdi_low"], summary["hdi_high"], strict=True)}
    joint_passed = joint_prob > 1 - HDI_PROB
    passed = joint_passed and all(covers.values())
    rows = [{"check": n, "estimate": m, "hdi_low": lo, "hdi_high": hi, "passed": covers[n],
             "detail": f"passes when the {HDI_PROB:.0%} HDI covers 0"}
            for n, m, lo, hi in zip(summary["check"], summary["mean"], summary["hdi_low"],
                                    summary["hdi_high"], strict=True)]
    rows.append({"check": "joint", "estimate": joint_prob, "hdi_low": np.nan,
                 "hdi_high": np.nan, "passed": joint_passed,
                 "detail": "joint_prob = share of draws at least as far (Mahalanobis) from "
                           f"the leads' posterior mean as zero; passes when > "
                           f"{1 - HDI_PROB:.2f}"})
    rows.append({"check": "band", "estimate": within, "hdi_low": -band, "hdi_high": band,
                 "passed": None,
                 "detail": f"P(every lead within +-{band:.4g}); reported, not a pass rule"})
    rows.append({"check": "verdict", "estimate": np.nan, "hdi_low": np.nan,
                 "hdi_high": np.nan, "passed": bool(passed), "detail": rule})
    verdict = {"passed": bool(passed), "joint_passed": bool(joint_passed),
               "joint_prob": joint_prob, "prob_within_band": within,
               "band": band, "leads_cover_zero": covers, "rule": rule}
    return pd.DataFrame(rows), verdict


def plot_event_study(table: pd.DataFrame, path: str | Path, *, shock_year: int,
                     treatment: str, outcome: str, verdict: dict) -> None:
    """Write a PNG of the event-study coefficients with their 94 % HDIs.

    Parameters
    ----------
    table : DataFrame
        Effects rows ``event[k]`` (``effect, mean, hdi_low, hdi_high``); the reference
        year is drawn at zero without an interval.
    path : str or Path
        Output file; written as PNG whatever its ending.
    shock_year : int
    treatment, outcome : str
        Axis labels.
    verdict : dict
        From :func:`pre_trend_check` (its result goes into the title).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table[table["effect"].str.startswith("event[")]
    k = np.array([int(e[6:-1]) for e in rows["effect"]])
    mean = rows["mean"].to_numpy()
    low, high = rows["hdi_low"].to_numpy(), rows["hdi_high"].to_numpy()
    fig, ax = plt.subplots(figsize=(7, 4))
    for part, color, label in ((k < REFERENCE, "C0", "leads (pre-trend check)"),
                               (k >= 0, "C3", "lags (effect of the shock)")):
        if part.any():
            ax.errorbar(k[part], mean[part], yerr=[mean[part] - low[part],
                                                   high[part] - mean[part]],
                        fmt="o", color=color, capsize=3, label=label)
    ax.plot([REFERENCE], [0.0], "o", mfc="white", color="k",
            label=f"reference ({shock_year - 1})")
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(-0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"years relative to the shock ({shock_year} = 0)")
    ax.set_ylabel(f"effect on {outcome} per unit of pre-shock {treatment}")
    passed = verdict.get("passed")
    check = ("no leads" if passed is None else
             f"pre-trend check {'passes' if passed else 'FAILS'} "
             f"(joint_prob {verdict['joint_prob']:.2f})")
    ax.set_title(f"Event study, {HDI_PROB:.0%} HDIs; {check}", fontsize="medium")
    ax.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def event_study_result(fitted: EstimateResult, study: EventStudy, spec: Spec
                       ) -> EstimateResult:
    """Turn the fit of an event-study panel into the shock design's result.

    Parameters
    ----------
    fitted : EstimateResult
        ``Analysis(study.spec).fit(study.frame)``.
    study : EventStudy
    spec : Spec
        The user's spec (with ``shock_year``), recorded in the result.

    Returns
    -------
    EstimateResult
        Effects ``total`` (mean of the post-shock event-time effects) and ``event[k]``
        for every event time; table ``pre_trend``; figure ``event_study.png``;
        ``meta["design_checks"]["pre_trend"]`` (written to ``diagnostics.json``) and
        ``meta["shock_design"]``.
    """
    fit = fitted.fits[OUTCOME]
    terms = fit.design.terms
    event = {f"event[{k}]": fit.beta[..., terms.index(study.columns[k])]
             for k in study.event_times}
    total = np.mean([event[f"event[{k}]"] for k in study.lags], axis=0)
    effects = {"total": total, **event}
    table, verdict = pre_trend_check({f"event[{k}]": event[f"event[{k}]"]
                                      for k in study.leads}, study.band)
    effects_table = summarize_draws(effects, "effect")
    figure = functools.partial(plot_event_study, effects_table, shock_year=study.shock_year,
                               treatment=spec.treatment, outcome=spec.outcome,
                               verdict=verdict)
    meta = {
        **fitted.meta,
        "shock_design": {
            "shock_year": study.shock_year, "reference_year": study.shock_year - 1,
            "baseline": spec.shock_baseline, "event_times": study.event_times,
            "columns": {str(k): c for k, c in study.columns.items()},
            "total": "mean of event[k] over the post-shock event times k >= 0",
            "dropped_units": study.dropped_units,
        },
        "design_checks": {"pre_trend": verdict},
    }
    return dataclasses.replace(
        fitted, spec=spec, effect_draws=effects,
        tables={**fitted.tables, "pre_trend": table},
        figures={**fitted.figures, "event_study.png": figure}, meta=meta)
