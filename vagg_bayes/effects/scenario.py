"""Interventions on the treatment: the change in the mean outcome they cause, per draw.

An intervention moves each row's treatment by ``delta_i`` (``shift``: the same amount
everywhere; ``set``: to one value, ``delta_i = value - t_i``), optionally only in some
groups. By the g-formula over the sample's rows, through the mediator equations when
there are mediators (each mediator moves by ``a_mj delta_i``, keeping each unit's own
residual):

- Gaussian outcome: ``change_i = (c_j + sum_m b_mj a_mj) delta_i``; the part through
  mechanism ``m`` is ``b_mj a_mj delta_i``, the direct part ``c_j delta_i``.
- Bernoulli outcome (probability scale): ``change_i = F(eta_i + (c_j + S_j) delta_i) -
  F(eta_i)`` with ``S_j = sum_m b_mj a_mj`` and ``F`` the inverse logit; the part
  through ``m`` is ``F(eta_i + b_mj a_mj delta_i) - F(eta_i)`` (the parts need not add
  up: the link is not linear).

Averages: ``all`` is the mean change over every row of the sample (rows outside the
chosen groups change by 0); each group's row is the mean over that group's rows. A
shift of 1 everywhere gives the total effect's draws of a continuous treatment
(Gaussian: exactly; Bernoulli: the g-formula's). With moderators, ``c_j`` and ``a_mj``
also get the interaction terms of row ``i``'s levels.

May import: numpy, pandas, scipy, vagg_bayes.bayes, vagg_bayes.effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit

from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.effects.decompose import _with_moderators, group_slopes
from vagg_bayes.effects.total import moderator_slopes

_CHUNK_CELLS = 2_000_000  # draws x rows per array


@dataclass(frozen=True, eq=False)
class Intervention:
    """Posterior draws of the change an intervention causes.

    Attributes
    ----------
    overall : dict of str -> ndarray (chain, draw)
        ``total`` and, with mediators, ``direct`` and ``through:<m>`` per mechanism:
        mean change over every row of the sample.
    by_group : dict of str -> ndarray (chain, draw, J) or None
        The same per group (mean over the group's rows).
    group_labels : ndarray (J,) or None
    group_rows, changed_rows : ndarray (J,) or None
        Rows of each group, and rows whose treatment the intervention changed.
    description : str
    """

    overall: dict
    by_group: dict | None
    group_labels: np.ndarray | None
    group_rows: np.ndarray | None
    changed_rows: np.ndarray | None
    description: str

    def summary(self, group: str = "group", *, threshold: float | None = None) -> pd.DataFrame:
        """One row per group and a row ``all``: the total change with its posterior summary.

        ``prob_above`` is the posterior probability that the change exceeds
        ``threshold`` (default 0); with mediators, ``share:<m>`` is the posterior mean
        share of the change that goes through mechanism ``m``.
        """
        from vagg_bayes.bayes.summary import summarize_draws

        draws = {"all": self.overall["total"]}
        if self.by_group is not None:
            for j, label in enumerate(self.group_labels):
                draws[str(label)] = self.by_group["total"][..., j]
        frame = summarize_draws(draws, group)
        t = 0.0 if threshold is None else float(threshold)
        frame["prob_above"] = [float(np.mean(np.asarray(v) > t)) for v in draws.values()]
        parts = [k for k in self.overall if k.startswith("through:")]
        for name in parts:
            share = [_share(self.overall[name], self.overall["total"])]
            if self.by_group is not None:
                share += [_share(self.by_group[name][..., j], self.by_group["total"][..., j])
                          for j in range(len(self.group_labels))]
            frame[f"share:{name.split(':', 1)[1]}"] = share
        return frame


def _share(part: np.ndarray, total: np.ndarray) -> float:
    mean = float(np.mean(total))
    return float(np.mean(part)) / mean if mean != 0 else float("nan")


def treatment_delta(t: np.ndarray, *, shift: float | None = None,
                    set_to: float | None = None, rows: np.ndarray | None = None) -> np.ndarray:
    """The change of every row's treatment (0 outside ``rows``, a boolean mask)."""
    if (shift is None) == (set_to is None):
        raise ValueError("Give exactly one of shift and set_to.")
    delta = np.full(t.shape, float(shift)) if shift is not None else float(set_to) - t
    if rows is not None:
        delta = np.where(rows, delta, 0.0)
    return delta


def intervene(outcome: EquationFit, mediators: dict[str, EquationFit], delta: np.ndarray,
              *, description: str = "") -> Intervention:
    """Per-draw change in the mean outcome when row ``i``'s treatment moves by ``delta[i]``.

    Parameters
    ----------
    outcome : EquationFit
        The outcome equation (on the rows ``delta`` refers to).
    mediators : dict of str -> EquationFit
        The mediator equations (empty without mediators).
    delta : ndarray (n,)
        Change of each outcome row's treatment (:func:`treatment_delta`).
    """
    design = outcome.design
    C, D = outcome.beta.shape[:2]
    CD = C * D
    labels = design.group_labels
    if labels is None:
        codes, J = np.zeros(design.n, dtype=np.int64), 1
    else:
        codes, J = design.group_codes, len(labels)
    rows = np.bincount(codes, minlength=J).astype(float)
    c_j = group_slopes(outcome, labels).reshape(CD, J)
    b_j = {m: group_slopes(outcome, labels, m).reshape(CD, J) for m in mediators}
    s_j = {m: b_j[m] * group_slopes(f, labels).reshape(CD, J) for m, f in mediators.items()}
    names = ["total"] + (["direct"] + [f"through:{m}" for m in mediators] if mediators else [])
    G = sparse.csr_matrix((np.ones(design.n), (np.arange(design.n), codes)), shape=(design.n, J))
    group_sum = {name: np.empty((CD, J)) for name in names}
    step = max(1, _CHUNK_CELLS // design.n)
    for start in range(0, CD, step):
        sl = slice(start, min(start + step, CD))
        c = _with_moderators(c_j[sl][:, codes], moderator_slopes(outcome, design, sl)) * delta
        parts = {m: _with_moderators(s[sl][:, codes],
                                     moderator_slopes(mediators[m], design, sl),
                                     b_j[m][sl][:, codes]) * delta
                 for m, s in s_j.items()}
        if outcome.family == "gaussian":
            total = c + sum(parts.values()) if parts else c
            changes = {"total": total}
            if mediators:
                changes["direct"] = c
                changes.update({f"through:{m}": v for m, v in parts.items()})
        else:
            eta = outcome.linear_predictor(sl)
            base = expit(eta)
            changes = {"total": expit(eta + c + sum(parts.values())) - base if parts
                       else expit(eta + c) - base}
            if mediators:
                changes["direct"] = expit(eta + c) - base
                changes.update({f"through:{m}": expit(eta + v) - base
                                for m, v in parts.items()})
        for name, value in changes.items():
            group_sum[name][sl] = np.asarray(value @ G)
    overall = {name: (v.sum(axis=1) / design.n).reshape(C, D) for name, v in group_sum.items()}
    by_group = None
    if labels is not None:
        by_group = {name: (v / rows).reshape(C, D, J) for name, v in group_sum.items()}
    changed = np.bincount(codes, weights=(delta != 0).astype(float), minlength=J)
    return Intervention(overall, by_group, labels, rows if labels is not None else None,
                        changed if labels is not None else None, description)
