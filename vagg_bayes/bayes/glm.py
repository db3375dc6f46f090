"""Hierarchical logistic regression (Bernoulli outcome), the group effects sampled.

A Bernoulli likelihood cannot be collapsed, so the group effects stay in the model.
Their parameterisation is chosen per group (``"auto"``): a group whose data are
informative about its own effect (expected Fisher information ``n_j p (1 - p)``
times a typical group variance above 1) is sampled *centred*, the others
*non-centred* — the mixed parameterisation that avoids both the funnel of small
groups and the slow mixing of the non-centred form in large ones.

May import: numpy, pymc, pytensor, vagg_bayes.bayes.design, vagg_bayes.bayes.priors.
"""

from __future__ import annotations

import numpy as np

from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.priors import Priors

PARAMETERIZATIONS = ("auto", "centered", "noncentered")
_TYPICAL_GROUP_SD = 0.5  # on the logit scale; used only to choose the parameterisation


def centered_groups(design: Design, parameterization: str = "auto") -> np.ndarray:
    """Boolean mask (J,): which groups are sampled centred."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {', '.join(PARAMETERIZATIONS)}; "
            f"got {parameterization!r}."
        )
    J = design.n_groups
    if parameterization != "auto":
        return np.full(J, parameterization == "centered")
    p = float(np.clip(design.y.mean(), 1e-3, 1 - 1e-3))
    n_j = np.bincount(design.group_codes, minlength=J)
    return n_j * p * (1 - p) * _TYPICAL_GROUP_SD**2 > 1.0


def build_logit_model(design: Design, priors: Priors, *, parameterization: str = "auto"):
    """PyMC model of a multilevel logistic regression.

    Returns
    -------
    pymc.Model
        Free variables ``theta`` (standardised coefficients) and, with a group,
        ``tau``, ``corr`` (varying slope) and the raw group effects; ``u`` (J, q) is a
        deterministic of the standardised group effects.

    Notes
    -----
    ``logit P(y_ij = 1) = z_ij' theta + w_ij' u_j``, ``u_j ~ N(0, S)``,
    ``S = diag(tau) R diag(tau)``. Centred groups: ``u_j ~ MvNormal(0, S)``;
    non-centred: ``u_j = L z_j`` with ``z_j ~ N(0, I)`` and ``S = L L'``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from vagg_bayes.bayes.collapsed import _chol_factor_pt

    q = len(design.varying)
    coords: dict[str, list] = {"term": list(design.terms)}
    if q:
        coords["varying"] = [design.terms[k] for k in design.varying]
        coords["group"] = [str(v) for v in design.group_labels]
    with pm.Model(coords=coords) as model:
        theta = pm.Normal("theta", mu=priors.theta_mu, sigma=priors.theta_sd, dims="term")
        eta = pt.dot(design.Z, theta)
        if q:
            tau = pm.HalfNormal("tau", sigma=priors.tau_scale, dims="varying")
            corr = None
            if q == 2:
                corr_raw = pm.Beta("corr_raw", alpha=priors.lkj_eta, beta=priors.lkj_eta)
                corr = pm.Deterministic("corr", 2 * corr_raw - 1)
            L = _chol_factor_pt(tau, corr)
            mask = centered_groups(design, parameterization)
            J = design.n_groups
            u = pt.zeros((J, q))
            c_idx, n_idx = np.flatnonzero(mask), np.flatnonzero(~mask)
            if len(c_idx):
                if q == 1:
                    u_c = pm.Normal("u_centered", 0.0, tau[0], shape=(len(c_idx), 1))
                else:
                    u_c = pm.MvNormal("u_centered", mu=np.zeros(q), chol=L, shape=(len(c_idx), q))
                u = pt.set_subtensor(u[c_idx], u_c)
            if len(n_idx):
                z = pm.Normal("z_noncentered", 0.0, 1.0, shape=(len(n_idx), q))
                u = pt.set_subtensor(u[n_idx], pt.dot(z, L.T))
            u = pm.Deterministic("u", u, dims=("group", "varying"))
            W = design.Z[:, list(design.varying)]
            eta = eta + pt.sum(u[design.group_codes] * W, axis=1)
        pm.Bernoulli("y", logit_p=eta, observed=design.y)
    return model
