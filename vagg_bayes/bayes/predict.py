"""Posterior predictive draws for new rows of a fitted equation.

For each posterior draw: ``eta = x' beta`` plus the group effects (a group the fit saw
uses its posterior draw; an unseen group draws ``u ~ N(0, S)`` from the population),
plus the group-time effect (a cell the fit saw uses its posterior draw, an unseen one
``N(0, sd_cell^2)``), plus a unit effect ``N(0, sd_unit^2)`` shared by the rows of each
unit (every unit of the new rows is treated as a new unit: a held-out firm); then
``y ~ N(eta, sigma^2)`` or ``Bernoulli(logit^-1(eta))``.

May import: numpy, pandas, scipy, vagg_bayes.bayes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.fit import EquationFit


def _flat(a):
    return None if a is None else np.asarray(a).reshape(-1, *np.shape(a)[2:])


def _population_draws(fit: EquationFit, n_groups: int, rng: np.random.Generator):
    """Group effects of ``n_groups`` new groups for every draw: (S, n_groups, q)."""
    sd = _flat(fit.group_sd)
    S, q = sd.shape
    z = rng.standard_normal((S, n_groups, q))
    if q == 1:
        return z * sd[:, None, :]
    corr = _flat(fit.group_corr)
    first = sd[:, None, 0] * z[..., 0]
    second = sd[:, None, 1] * (corr[:, None] * z[..., 0] + np.sqrt(1 - corr[:, None] ** 2)
                               * z[..., 1])
    return np.stack([first, second], axis=-1)


def predict_draws(fit: EquationFit, new: Design, *, rng: np.random.Generator,
                  mean_only: bool = False) -> np.ndarray:
    """Posterior predictive draws ``(S, n)`` of the response for the rows of ``new``.

    ``new`` is built with ``reference=fit.design`` (same terms and encoding).
    ``mean_only`` returns the draws of the expected response (no residual noise, no new
    unit effects) instead.
    """
    beta = _flat(fit.beta)
    S = beta.shape[0]
    eta = beta @ new.X.T
    if fit.group_effects is not None and new.group_labels is not None:
        seen = pd.Index(fit.design.group_labels).get_indexer(pd.Index(new.group_labels))
        u_fit = _flat(fit.group_effects)  # (S, J, q)
        u_new = _population_draws(fit, len(new.group_labels), rng)
        known = seen >= 0
        u_new[:, known] = u_fit[:, seen[known]]
        for a, col in enumerate(new.varying):
            eta += u_new[:, new.group_codes, a] * new.X[:, col]
    post = fit.idata.posterior
    if "sd_cell" in post and new.time_codes is not None:
        sd_cell = np.asarray(post["sd_cell"]).reshape(-1)
        T_new = len(new.time_labels)
        cells = rng.standard_normal((S, len(new.group_labels), T_new)) * sd_cell[:, None, None]
        if fit.cell_effects is not None:
            seen_g = pd.Index(fit.design.group_labels).get_indexer(pd.Index(new.group_labels))
            seen_t = pd.Index(fit.design.time_labels).get_indexer(pd.Index(new.time_labels))
            fit_cells = _flat(fit.cell_effects)
            for j in np.flatnonzero(seen_g >= 0):
                for t in np.flatnonzero(seen_t >= 0):
                    cells[:, j, t] = fit_cells[:, seen_g[j], seen_t[t]]
        eta += cells[:, new.group_codes, new.time_codes]
    if mean_only:
        return expit(eta) if fit.family == "bernoulli" else eta
    if "sd_unit" in post and new.unit_codes is not None:
        sd_unit = np.asarray(post["sd_unit"]).reshape(-1)
        units = rng.standard_normal((S, new.n_units)) * sd_unit[:, None]
        eta += units[:, new.unit_codes]
    if fit.family == "bernoulli":
        return (rng.random(eta.shape) < expit(eta)).astype(float)
    return eta + _flat(fit.sigma)[:, None] * rng.standard_normal(eta.shape)
