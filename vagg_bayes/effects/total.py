"""The total effect of the treatment on the outcome's scale, one value per draw.

For a one-unit rise of the treatment (0 -> 1 for a binary treatment), averaged over
the sample's rows (DESIGN.md section 4.3):

- Gaussian: ``mean_i (beta_T + u_T,g(i))`` — the coefficient plus, with a varying
  slope, the sample-weighted group deviations (:func:`group_slopes` averaged over rows).
- Bernoulli: the g-formula ``mean_i [F(eta_i(t1)) - F(eta_i(t0))]`` with ``F`` the
  inverse logit, ``t0, t1`` = 0, 1 for a binary treatment and the observed value and
  that value plus one for a continuous one (:func:`treatment_shifts`).

With moderators (:attr:`Design.interactions`) row ``i``'s slope also has the
coefficients of its levels' interaction terms: :func:`group_slopes` averages them over
the rows of each group (``among``), :func:`moderator_slopes` gives them row by row.

The helpers here are shared with :mod:`vagg_bayes.effects.decompose`.

May import: numpy, pandas, vagg_bayes.bayes.
"""

from __future__ import annotations

import numpy as np

from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.bayes.numeric import expit

_CHUNK_CELLS = 5_000_000  # draws x rows evaluated at once


def is_binary(values: np.ndarray) -> bool:
    """Whether a treatment takes only the values 0 and 1."""
    return bool(np.isin(np.unique(values), (0.0, 1.0)).all())


def treatment_shifts(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(t0 - t_obs, t1 - t_obs)`` per row: (-t, 1 - t) if binary, else (0, 1)."""
    if is_binary(t):
        return -t, 1.0 - t
    return np.zeros_like(t), np.ones_like(t)


def treatment_contrast(X: np.ndarray, k: int, design=None) -> tuple[np.ndarray, np.ndarray]:
    """Design matrices at the two treatment levels compared (column ``k``).

    The observed matrix with column ``k`` shifted by :func:`treatment_shifts`: set to 0
    and 1 for a binary treatment, kept and raised by one for a continuous one. With a
    ``design`` that has moderators, its interaction columns follow the treatment.
    """
    d0, d1 = treatment_shifts(X[:, k])
    x0, x1 = X.copy(), X.copy()
    x0[:, k] += d0
    x1[:, k] += d1
    if design is not None and design.interactions:
        for j, col in enumerate(design.interactions):
            x0[:, col] = x0[:, k] * design.modifiers[:, j]
            x1[:, col] = x1[:, k] * design.modifiers[:, j]
    return x0, x1


def _moderator_pairs(fit: EquationFit, among) -> tuple[list[int], list[int]]:
    """Columns of ``fit``'s interaction terms and of ``among.modifiers`` that match."""
    if among is None or not fit.design.interactions or among.modifiers is None:
        return [], []
    cols, mods = [], []
    for j, name in enumerate(fit.design.modifier_terms):
        if name in among.modifier_terms:
            cols.append(fit.design.interactions[j])
            mods.append(among.modifier_terms.index(name))
    return cols, mods


def level_shares(among, labels: np.ndarray | None) -> np.ndarray:
    """Share of each group's rows (of design ``among``) at each moderator level: (J, L).

    Groups of ``labels`` without rows in ``among`` get zeros; ``labels=None``: one row
    (the whole sample).
    """
    M = among.modifiers
    if labels is None or among.group_codes is None:
        return M.mean(axis=0, keepdims=True) if len(M) else np.zeros((1, M.shape[1]))
    where = _label_index(labels, among.group_labels)
    codes = where[among.group_codes]
    J = len(labels)
    counts = np.bincount(codes, minlength=J).astype(float)
    sums = np.stack([np.bincount(codes, weights=M[:, j], minlength=J)
                     for j in range(M.shape[1])], axis=-1) if M.shape[1] else np.zeros((J, 0))
    return np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=counts[:, None] > 0)


def moderator_slopes(fit: EquationFit, among, draws: slice | np.ndarray) -> np.ndarray | None:
    """Row by row, the part of ``fit``'s treatment slope its moderators add: (k, n).

    ``among`` is the design whose rows are meant (the outcome equation's); ``draws``
    selects flattened draws. None when ``fit`` has no moderators.
    """
    cols, mods = _moderator_pairs(fit, among)
    if not cols:
        return None
    beta = fit.beta.reshape(-1, fit.beta.shape[-1])[draws][:, cols]
    return beta @ among.modifiers[:, mods].T


def _label_index(known: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Position of each label in ``known`` (-1 where absent)."""
    import pandas as pd

    return pd.Index(known).get_indexer(pd.Index(labels))


def group_slopes(fit: EquationFit, labels: np.ndarray | None,
                 column: str | None = None, *, among=None) -> np.ndarray:
    """Slope of the treatment (or of ``column``) in each group of ``labels``: (chain, draw, J).

    The coefficient plus, when the slope varies by group, that group's deviation.
    ``labels`` are the outcome equation's groups (``None``: one column); a group the
    equation did not see gets the population slope. With moderators, the treatment's
    slope also gets its interaction terms averaged over the rows of each group in the
    design ``among`` (the outcome equation's; without it: the reference levels').
    """
    k = fit.design.treatment_index if column is None else fit.design.terms.index(column)
    beta = fit.beta[..., k]
    J = 1 if labels is None else len(labels)
    out = np.repeat(beta[..., None], J, axis=-1)
    if labels is not None and fit.group_effects is not None and k in fit.design.varying:
        where = _label_index(fit.design.group_labels, labels)
        seen = where >= 0
        dev = fit.group_effects[..., fit.design.varying.index(k)]
        out[..., seen] += dev[..., where[seen]]
    if column is None:
        cols, mods = _moderator_pairs(fit, among)
        if cols:
            shares = level_shares(among, labels)[:, mods]  # (J, L)
            out += fit.beta[..., cols] @ shares.T
    return out


def total_effect(fit: EquationFit) -> np.ndarray:
    """Posterior draws (chain, draw) of the sample-average total effect."""
    design = fit.design
    k = design.treatment_index
    n_chains, n_draws = fit.beta.shape[:2]
    if fit.family == "gaussian":
        if design.group_codes is None:
            return group_slopes(fit, None, among=design)[..., 0]
        weights = np.bincount(design.group_codes, minlength=design.n_groups) / design.n
        return group_slopes(fit, design.group_labels, among=design) @ weights
    x0, x1 = treatment_contrast(design.X, k, design)
    n = n_chains * n_draws
    out = np.empty(n)
    step = max(1, _CHUNK_CELLS // design.n)
    for start in range(0, n, step):
        sl = slice(start, min(start + step, n))
        p1 = expit(fit.linear_predictor(sl, x1))
        p0 = expit(fit.linear_predictor(sl, x0))
        out[sl] = (p1 - p0).mean(axis=1)
    return out.reshape(n_chains, n_draws)
