"""Heterogeneity: the treatment's effect at each level of a moderator, and groups ranked.

With ``[variables] moderators`` every equation holds the treatment's products with the
moderator's level indicators (:attr:`~vagg_bayes.bayes.design.Design.interactions`), so
the model itself lets the effect differ by level. The effect at a level is the
g-formula average of the treatment's effect over the sample's rows at that level, by
the same functions as the sample-average effects (:func:`~vagg_bayes.effects.total.
total_effect`, :func:`~vagg_bayes.effects.decompose.decompose`) applied to those rows:

- ``total[<moderator>=<level>]`` (with mediators also ``direct[...]``, ``indirect[...]``
  and ``indirect:<m>[...]``, the mechanism's part at that level);
- ``contrast[<moderator>: <level> - <reference>]``: the total effect at the level minus
  the one at the reference (first sorted) level, per draw; its ``prob_positive`` is the
  posterior probability that the level's effect is the larger.

:func:`group_ranking` ranks the groups (cities) by their own total effect per draw: the
posterior of each group's rank and the probability that it is among the ``top`` largest.

May import: numpy, pandas, scipy, vagg_bayes.bayes, vagg_bayes.effects.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.effects.decompose import decompose
from vagg_bayes.effects.total import total_effect

__all__ = ["group_ranking", "group_total_draws", "level_rows", "moderator_effects",
           "restrict"]

TOP = 10  # groups counted as "the top" in the ranking table


def level_rows(design: Design, column: str, level: str) -> np.ndarray:
    """Boolean mask of the rows of ``design`` at ``level`` of moderator ``column``."""
    levels = dict(design.moderation)[column]
    names = [f"{column}[{lev}]" for lev in levels[1:]]
    idx = [design.modifier_terms.index(n) for n in names if n in design.modifier_terms]
    M = design.modifiers[:, idx]
    if level == levels[0]:
        return ~M.astype(bool).any(axis=1)
    return design.modifiers[:, design.modifier_terms.index(f"{column}[{level}]")] > 0


def restrict(fit: EquationFit, rows: np.ndarray) -> EquationFit:
    """Cut ``fit``'s design to ``rows`` (a boolean mask).

    The groups keep their labels and codes, so every group's posterior effects stay in
    place.
    """
    d = fit.design
    cut = {name: getattr(d, name)[rows] for name in
           ("y", "X", "Z", "group_codes", "unit_codes", "time_codes", "modifiers")
           if getattr(d, name) is not None}
    return dataclasses.replace(fit, design=dataclasses.replace(d, **cut))


def moderator_effects(outcome: EquationFit, mediators: dict[str, EquationFit]) -> dict:
    """Effect draws (chain, draw) at every level of every moderator, and the contrasts.

    Parameters
    ----------
    outcome : EquationFit
        The outcome equation, with moderators in its design.
    mediators : dict of str -> EquationFit
        The mediator equations (empty without mediators).

    Returns
    -------
    dict of str -> ndarray (chain, draw)
        Per moderator: ``total[<m>=<level>]`` for each level (with mediators also
        ``direct[...]``, ``indirect[...]``, ``indirect:<mediator>[...]``), then
        ``contrast[<m>: <level> - <reference>]`` for each non-reference level.
    """
    out: dict[str, np.ndarray] = {}
    for column, levels in outcome.design.moderation:
        totals = {}
        for level in levels:
            rows = level_rows(outcome.design, column, level)
            if not rows.any():
                continue
            sub = restrict(outcome, rows)
            tag = f"[{column}={level}]"
            if mediators:
                draws = decompose(sub, mediators).draws
                names = ["total", "direct", "indirect", *(f"indirect:{m}" for m in mediators)]
                out.update({f"{name}{tag}": draws[name] for name in names})
                totals[level] = draws["total"]
            else:
                totals[level] = out[f"total{tag}"] = total_effect(sub)
        reference = levels[0]
        for level in levels[1:]:
            if level in totals and reference in totals:
                out[f"contrast[{column}: {level} - {reference}]"] = (totals[level]
                                                                    - totals[reference])
    return out


def group_total_draws(outcome: EquationFit, mediators: dict[str, EquationFit]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Each group's own total effect (direct plus indirect), averaged over its rows.

    Returns
    -------
    labels : ndarray (J,)
    draws : ndarray (chain, draw, J)
    """
    if outcome.design.group_labels is None:
        raise KeyError("group effects need a model with [data].group set.")
    dec = decompose(outcome, mediators)
    return dec.group_labels, dec.group_draws["direct"] + dec.group_draws["indirect"]


def group_ranking(outcome: EquationFit, mediators: dict[str, EquationFit], group: str,
                  *, top: int = TOP) -> pd.DataFrame:
    """Rank the groups by their total effect, with the uncertainty of the rank.

    Per draw the groups are ranked by their total effect (1 = the largest; ties share
    the mean rank). One row per group, best mean rank first: the effect's summary
    (``mean, sd, hdi_low, hdi_high, prob_positive, r_hat, ess_bulk``), then
    ``rank_mean``, ``rank_low`` and ``rank_high`` (the 3 % and 97 % quantiles of the
    rank) and ``prob_top<top>``, the probability that the group is among the ``top``
    largest.

    Parameters
    ----------
    outcome, mediators : EquationFit
        The fitted equations (``mediators`` empty without mediators).
    group : str
        Name of the first column (the spec's group column).
    top : int, default 10
    """
    from scipy.stats import rankdata

    from vagg_bayes.bayes.summary import summarize_draws

    labels, draws = group_total_draws(outcome, mediators)
    flat = draws.reshape(-1, draws.shape[-1])
    ranks = rankdata(-flat, axis=1, method="average")
    frame = summarize_draws({str(g): draws[..., j] for j, g in enumerate(labels)}, group)
    frame["rank_mean"] = ranks.mean(axis=0)
    frame["rank_low"] = np.quantile(ranks, 0.03, axis=0)
    frame["rank_high"] = np.quantile(ranks, 0.97, axis=0)
    frame[f"prob_top{top}"] = (ranks <= top).mean(axis=0)
    return frame.sort_values(["rank_mean", "mean"], ascending=[True, False],
                             kind="stable").reset_index(drop=True)
