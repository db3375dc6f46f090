"""The total effect of the treatment on the outcome's scale, one value per draw.

For a one-unit rise of the treatment (0 -> 1 for a binary treatment), averaged over
the sample's rows (DESIGN.md section 4.3):

- Gaussian: ``mean_i (beta_T + u_T,g(i))`` — the coefficient plus, with a varying
  slope, the sample-weighted group deviations.
- Bernoulli: the g-formula ``mean_i [F(eta_i(t1)) - F(eta_i(t0))]`` with ``F`` the
  inverse logit, ``t0, t1`` = 0, 1 for a binary treatment and the observed value and
  that value plus one for a continuous one.

May import: numpy, scipy, vagg_bayes.bayes.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from vagg_bayes.bayes.fit import EquationFit

_CHUNK_CELLS = 5_000_000  # draws x rows evaluated at once


def is_binary(values: np.ndarray) -> bool:
    """Whether a treatment takes only the values 0 and 1."""
    return bool(np.isin(np.unique(values), (0.0, 1.0)).all())


def treatment_contrast(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Design matrices at the two treatment levels compared (column ``k``)."""
    x0, x1 = X.copy(), X.copy()
    if is_binary(X[:, k]):
        x0[:, k], x1[:, k] = 0.0, 1.0
    else:
        x1[:, k] = X[:, k] + 1.0
    return x0, x1


def total_effect(fit: EquationFit) -> np.ndarray:
    """Posterior draws (chain, draw) of the sample-average total effect."""
    design = fit.design
    k = design.treatment_index
    C, D = fit.beta.shape[:2]
    if fit.family == "gaussian":
        effect = fit.beta[..., k].copy()
        if fit.group_effects is not None and k in design.varying:
            weights = np.bincount(design.group_codes, minlength=design.n_groups) / design.n
            slope = fit.group_effects[..., design.varying.index(k)]
            effect += slope @ weights
        return effect
    x0, x1 = treatment_contrast(design.X, k)
    out = np.empty(C * D)
    step = max(1, _CHUNK_CELLS // design.n)
    for start in range(0, C * D, step):
        sl = slice(start, min(start + step, C * D))
        p1 = expit(fit.linear_predictor(sl, x1))
        p0 = expit(fit.linear_predictor(sl, x0))
        out[sl] = (p1 - p0).mean(axis=1)
    return out.reshape(C, D)
