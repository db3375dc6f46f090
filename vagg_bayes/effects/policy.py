"""Policy scenarios priced from a fitted model: ``scenario.csv``.

A scenario changes the treatment of the sample's rows (all of them, or those of some
groups) and reports what the change does to the mean outcome, by the g-formula through
the mediators (:func:`vagg_bayes.effects.scenario.intervene`):

- ``shift=X``: every selected row's treatment rises by ``X``;
- ``set_to=X``: every selected row's treatment becomes ``X``;
- ``to_quantile=Q``: every selected row below the ``Q`` quantile of the treatment
  (over all rows of the data) is raised to it; rows above it keep theirs ("lagging
  cities raised to the median" is ``to_quantile=0.5``).

The table has one row per group and a row ``all`` (the mean change over every row of
the sample, rows outside the chosen groups changing by 0): ``group, mean, sd, hdi_low,
hdi_high, prob_positive, prob_above`` (``prob_above``: the probability that the change
exceeds ``threshold``), then ``r_hat, ess_bulk``, ``rows`` and ``changed_rows``, and
with mediators ``share:<m>``, the posterior mean share of the change delivered through
mechanism ``m``. For a Bernoulli outcome the change is in the probability; ``units``
is the number of units (firms; rows without a unit column) of the group and
``saved_mean, saved_hdi_low, saved_hdi_high`` the expected number of them whose
outcome the scenario turns to 1 in a typical period (the change times ``units``).

May import: numpy, pandas, vagg_bayes.bayes, vagg_bayes.effects, vagg_bayes.errors.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.effects.scenario import Intervention, intervene, treatment_delta
from vagg_bayes.errors import DataError, SpecError

OUTCOME = "outcome"
CONTRACT = ["group", "mean", "sd", "hdi_low", "hdi_high", "prob_positive", "prob_above"]


@dataclass(frozen=True, eq=False)
class Scenario:
    """A priced scenario: the table behind ``scenario.csv`` and the draws behind it.

    Attributes
    ----------
    table : DataFrame
    intervention : Intervention
    description : str
    """

    table: pd.DataFrame
    intervention: Intervention
    description: str

    def __str__(self) -> str:
        shown = self.table[[c for c in self.table.columns
                            if c in CONTRACT or c.startswith(("share:", "saved_mean"))]]
        text = shown.head(12).to_string(index=False, float_format=lambda v: f"{v:.4g}")
        return f"Scenario: {self.description}\n\n{text}\n" + (
            f"... ({len(self.table) - 12} more rows)\n" if len(self.table) > 12 else "")


def select_groups(result, groups) -> np.ndarray | None:
    """Boolean mask of the outcome rows in ``groups`` (labels matched as text), or None.

    Raises
    ------
    SpecError
        ``groups`` given but the spec has no group.
    DataError
        A group that is not in the data (the message names it and shows valid ones).
    """
    if groups is None:
        return None
    spec, design = result.spec, result.fits[OUTCOME].design
    if design.group_labels is None:
        raise SpecError(
            "--groups needs a spec with [data].group (the groups whose treatment changes); "
            "this spec has none. Remove --groups or set [data].group.")
    names = pd.Index([str(g) for g in design.group_labels])
    wanted = [str(g) for g in groups]
    where = names.get_indexer(wanted)
    missing = [g for g, w in zip(wanted, where, strict=True) if w < 0]
    if missing:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise DataError(
            f"Group(s) {', '.join(repr(g) for g in missing)} named in --groups are not "
            f"values of '{spec.group}' in the data (its {len(names)} groups include "
            f"{shown}). Use values of the '{spec.group}' column, separated by commas.")
    return np.isin(design.group_codes, where)


def price_scenario(result, *, shift: float | None = None, set_to: float | None = None,
                   to_quantile: float | None = None, groups=None,
                   threshold: float | None = None,
                   data: pd.DataFrame | None = None) -> Scenario:
    """Price a change of the treatment (see the module docstring).

    Parameters
    ----------
    result : EstimateResult
    shift, set_to, to_quantile : float
        Exactly one: raise by ``shift``, set to ``set_to``, or raise rows below the
        ``to_quantile`` quantile (in [0, 1]) of the treatment to it.
    groups : sequence, optional
        Labels of the groups whose rows change (matched as text); default all rows.
    threshold : float, optional
        ``prob_above`` is ``P(change > threshold)``; default 0.
    data : DataFrame, optional
        The data the model was fitted to: with a ``[data].unit`` column, a Bernoulli
        outcome's ``units`` counts distinct units per group (else rows).

    Returns
    -------
    Scenario

    Raises
    ------
    SpecError, DataError
        Not exactly one kind of change; a quantile outside [0, 1]; unknown groups.
    """
    given = [v is not None for v in (shift, set_to, to_quantile)]
    if sum(given) != 1:
        raise SpecError("A scenario needs exactly one of --shift X, --set X and "
                        "--to-quantile Q (the change of the treatment).")
    spec = result.spec
    fit = result.fits[OUTCOME]
    design = fit.design
    rows = select_groups(result, groups)
    t = design.X[:, design.treatment_index]
    if to_quantile is not None:
        if not 0.0 <= float(to_quantile) <= 1.0:
            raise SpecError(f"--to-quantile must be between 0 and 1; got {to_quantile}.")
        level = float(np.quantile(t, float(to_quantile)))
        delta = np.maximum(level - t, 0.0)
        if rows is not None:
            delta = np.where(rows, delta, 0.0)
        what = (f"raised to its {100 * float(to_quantile):g}% quantile ({level:.4g}) where "
                "below it")
    else:
        delta = treatment_delta(t, shift=shift, set_to=set_to, rows=rows)
        what = f"shift by {shift}" if shift is not None else f"set to {set_to}"
    where = "" if groups is None else f" in {spec.group} {', '.join(str(g) for g in groups)}"
    description = f"{spec.treatment} {what}{where}"
    change = intervene(fit, {m: result.fits[m] for m in spec.mediators}, delta,
                       description=description)
    with warnings.catch_warnings():  # groups left unchanged: r_hat of constant draws
        warnings.simplefilter("ignore", RuntimeWarning)
        table = change.summary("group", threshold=threshold)
    labels = design.group_labels
    if labels is None:
        n_rows = np.array([design.n])
        changed = np.array([int((delta != 0).sum())])
    else:
        n_rows = np.concatenate([[design.n], change.group_rows]).astype(int)
        changed = np.concatenate([[int((delta != 0).sum())], change.changed_rows]).astype(int)
    table["rows"] = n_rows
    table["changed_rows"] = changed
    if spec.family == "bernoulli":
        table = _saved(table, change, spec, design, data)
    shares = [c for c in table.columns if c.startswith("share:")]
    rest = [c for c in table.columns if c not in CONTRACT and c not in shares]
    return Scenario(table[CONTRACT + rest + shares], change, description)


def _saved(table: pd.DataFrame, change: Intervention, spec, design, data) -> pd.DataFrame:
    """Bernoulli: units per group and the expected number of them the scenario saves."""
    import arviz as az

    from vagg_bayes.bayes.summary import HDI_PROB

    if data is not None and spec.unit is not None and spec.unit in data:
        if design.group_labels is None:
            units = np.array([data[spec.unit].nunique()])
        else:
            per = data.groupby(spec.group, sort=False)[spec.unit].nunique()
            per.index = per.index.map(str)
            units = np.concatenate([[data[spec.unit].nunique()],
                                    per.reindex([str(g) for g in design.group_labels])
                                    .fillna(0).to_numpy()])
    else:
        units = table["rows"].to_numpy()
    draws = [np.asarray(change.overall["total"]).reshape(-1)]
    if change.by_group is not None:
        by = np.asarray(change.by_group["total"])
        draws += [by[..., j].reshape(-1) for j in range(by.shape[-1])]
    saved = np.stack(draws, axis=1) * units[None, :]
    hdi = np.asarray([az.hdi(saved[:, k], hdi_prob=HDI_PROB) for k in range(saved.shape[1])])
    table = table.copy()
    table["units"] = units.astype(int)
    table["saved_mean"] = saved.mean(axis=0)
    table["saved_hdi_low"] = hdi[:, 0]
    table["saved_hdi_high"] = hdi[:, 1]
    return table
