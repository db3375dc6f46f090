"""Gaussian hierarchical regression with the group effects integrated out exactly.

Per group ``j`` (MATH.md section 1)::

    y_j = Z_j theta + W_j u_j + e_j,   e_j ~ N(0, s^2 I),   u_j = L z_j,   z_j ~ N(0, I)

With ``U_j = W_j L``, ``g_j = L' W_j' r_j``, ``A_j = I + L' W_j'W_j L / s^2``::

    r_j' V_j^-1 r_j = (r_j'r_j - g_j' A_j^-1 g_j / s^2) / s^2
    log det V_j     = n_j log s^2 + log det A_j

Everything comes from per-group sufficient statistics (``n_j``, ``y'y``, ``Z'y``,
``Z'Z``) computed in one pass, so a gradient costs ``O(J p^2)`` whatever the number of
rows. This Cholesky form stays finite as a group SD goes to zero. Afterwards the group
effects are drawn from their exact conditional posterior
``z_j | . ~ N(A_j^-1 g_j / s^2, A_j^-1)``.

May import: numpy, pytensor, pymc, vagg_bayes.bayes.design, vagg_bayes.bayes.priors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.priors import Priors

LOG_2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True, eq=False)
class GroupStats:
    """Per-group sufficient statistics of a Gaussian regression (standardised scale)."""

    n: np.ndarray  # (J,)
    yy: np.ndarray  # (J,)
    Zy: np.ndarray  # (J, p)
    ZZ: np.ndarray  # (J, p, p)
    varying: tuple[int, ...]


def group_statistics(design: Design) -> GroupStats:
    """One pass over the rows: ``n_j, y_j'y_j, Z_j'y_j, Z_j'Z_j`` for every group.

    Without a group the whole sample is one block (and nothing varies).
    """
    Z, y = design.Z, design.y
    if design.group_codes is None:
        return GroupStats(
            np.array([float(len(y))]), np.array([y @ y]), (Z.T @ y)[None], (Z.T @ Z)[None], ()
        )
    codes = design.group_codes
    J, p = design.n_groups, design.p
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=J)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    Zs, ys = Z[order], y[order]
    ZZ = np.empty((J, p, p))
    Zy = np.empty((J, p))
    yy = np.empty(J)
    for j in range(J):
        zj, yj = Zs[bounds[j] : bounds[j + 1]], ys[bounds[j] : bounds[j + 1]]
        ZZ[j] = zj.T @ zj
        Zy[j] = zj.T @ yj
        yy[j] = yj @ yj
    return GroupStats(counts.astype(float), yy, Zy, ZZ, design.varying)


def _chol_factor_pt(tau, corr):
    """Lower Cholesky factor of the group-effect covariance (PyTensor)."""
    import pytensor.tensor as pt

    if corr is None:
        return pt.diag(tau)
    return pt.stack(
        [
            pt.stack([tau[0], pt.zeros(())]),
            pt.stack([tau[1] * corr, tau[1] * pt.sqrt(1 - corr**2)]),
        ]
    )


def collapsed_logp(stats: GroupStats, theta, sigma, tau=None, corr=None):
    """Marginal log-likelihood, group effects integrated out (a PyTensor scalar).

    ``tau`` (q,) and ``corr`` (scalar, only for q = 2) describe the group effects;
    both None without a group.
    """
    import pytensor.tensor as pt

    s2 = sigma**2
    ZZt = pt.tensordot(stats.ZZ, theta, axes=[[2], [0]])  # (J, p)
    rr = stats.yy - 2 * pt.dot(stats.Zy, theta) + pt.dot(ZZt, theta)
    n = stats.n
    if not stats.varying:
        return -0.5 * pt.sum(n * (LOG_2PI + pt.log(s2)) + rr / s2)
    w = list(stats.varying)
    WW = stats.ZZ[:, w][:, :, w]  # (J, q, q) constant
    Wr = stats.Zy[:, w] - ZZt[:, w]  # (J, q)
    L = _chol_factor_pt(tau, corr)
    G = pt.tensordot(pt.tensordot(WW, L, axes=[[2], [0]]), L, axes=[[1], [0]])  # L'WW L
    G = G.dimshuffle(0, 2, 1)
    g = pt.dot(Wr, L)  # (J, q): rows are L' Wr_j
    if len(w) == 1:
        a = 1 + G[:, 0, 0] / s2
        logdet = pt.log(a)
        quad_corr = g[:, 0] ** 2 / a
    else:
        a00 = 1 + G[:, 0, 0] / s2
        a11 = 1 + G[:, 1, 1] / s2
        a01 = G[:, 0, 1] / s2
        det = a00 * a11 - a01**2
        logdet = pt.log(det)
        quad_corr = (a11 * g[:, 0] ** 2 - 2 * a01 * g[:, 0] * g[:, 1] + a00 * g[:, 1] ** 2) / det
    quad = (rr - quad_corr / s2) / s2
    return -0.5 * pt.sum(n * (LOG_2PI + pt.log(s2)) + logdet + quad)


def build_collapsed_model(design: Design, priors: Priors, stats: GroupStats | None = None):
    """PyMC model of a Gaussian hierarchical regression with the group effects collapsed.

    Parameters
    ----------
    design : Design
    priors : Priors
    stats : GroupStats, optional
        Precomputed statistics (computed from ``design`` when omitted).

    Returns
    -------
    pymc.Model
        Free variables: ``theta_qr`` (QR-rotated standardised coefficients; ``theta`` is
        the deterministic standardised coefficients), ``sigma``, and with a
        group ``tau`` (group-effect SDs, standardised scale) and, for a varying slope,
        ``corr``. The likelihood is a ``Potential`` named ``loglik``.

    Notes
    -----
    ``y_ij = z_ij' theta + w_ij' u_j + e_ij``, ``u_j ~ N(0, S)``, ``e_ij ~ N(0, sigma^2)``,
    with ``S = diag(tau) R diag(tau)``; the ``u_j`` are integrated out analytically.
    """
    import pymc as pm

    stats = stats if stats is not None else group_statistics(design)
    q = len(design.varying)
    coords = {"term": list(design.terms)}
    if q:
        coords["varying"] = [design.terms[k] for k in design.varying]
    # QR reparameterisation (as rstanarm's QR = TRUE): sample theta_qr = R theta with
    # R'R = Z'Z / n, whose posterior is close to isotropic, so a diagonal mass matrix
    # suffices even for correlated regressors (year indicators, dummies).
    import pytensor.tensor as pt

    R = np.linalg.cholesky(stats.ZZ.sum(axis=0) / stats.n.sum()).T
    R_inv = np.linalg.inv(R)
    with pm.Model(coords=coords) as model:
        theta_qr = pm.Flat("theta_qr", dims="term", initval=R @ priors.theta_mu)
        theta = pm.Deterministic("theta", pt.dot(R_inv, theta_qr), dims="term")
        pm.Potential(
            "theta_prior",
            pm.logp(pm.Normal.dist(mu=priors.theta_mu, sigma=priors.theta_sd), theta).sum(),
        )
        sigma = pm.Exponential("sigma", lam=priors.sigma_rate)
        tau = corr = None
        if q:
            tau = pm.HalfNormal("tau", sigma=priors.tau_scale, dims="varying")
        if q == 2:
            corr_raw = pm.Beta("corr_raw", alpha=priors.lkj_eta, beta=priors.lkj_eta)
            corr = pm.Deterministic("corr", 2 * corr_raw - 1)
        pm.Potential("loglik", collapsed_logp(stats, theta, sigma, tau, corr))
    return model


def _chol_factor_np(tau: np.ndarray, corr: np.ndarray | None) -> np.ndarray:
    """Cholesky factors for every draw: (D, q, q)."""
    D, q = tau.shape
    L = np.zeros((D, q, q))
    L[:, 0, 0] = tau[:, 0]
    if q == 2:
        L[:, 1, 0] = tau[:, 1] * corr
        L[:, 1, 1] = tau[:, 1] * np.sqrt(1 - corr**2)
    return L


def _conditional_parts(stats: GroupStats, theta, sigma, tau, corr):
    """Per draw and group: rr, g, A and L (NumPy, vectorised over draws)."""
    ZZt = np.einsum("jkl,dl->djk", stats.ZZ, theta)  # (D, J, p)
    rr = stats.yy[None] - 2 * theta @ stats.Zy.T + np.einsum("djk,dk->dj", ZZt, theta)
    if not stats.varying:
        return rr, None, None, None
    w = list(stats.varying)
    WW = stats.ZZ[:, w][:, :, w]
    Wr = stats.Zy[None][:, :, w] - ZZt[:, :, w]  # (D, J, q)
    L = _chol_factor_np(tau, corr)  # (D, q, q)
    s2 = (sigma**2)[:, None, None, None]
    G = np.einsum("dab,jbc,dce->djae", L.transpose(0, 2, 1), WW, L)
    A = np.eye(len(w)) + G / s2
    g = np.einsum("dba,djb->dja", L, Wr)  # L' Wr
    return rr, g, A, L


def group_loglik(stats: GroupStats, theta, sigma, tau=None, corr=None) -> np.ndarray:
    """Marginal log-likelihood of each group for each draw, shape (D, J).

    The group is the unit of prediction: this is what leave-one-group-out
    cross-validation (LOO over cities) needs.
    """
    rr, g, A, _ = _conditional_parts(stats, theta, sigma, tau, corr)
    s2 = (sigma**2)[:, None]
    if g is None:
        return -0.5 * (stats.n[None] * (LOG_2PI + np.log(s2)) + rr / s2)
    _, logdet = np.linalg.slogdet(A)
    sol = np.linalg.solve(A, g[..., None])[..., 0]
    quad = (rr - np.einsum("dja,dja->dj", g, sol) / s2) / s2
    return -0.5 * (stats.n[None] * (LOG_2PI + np.log(s2)) + logdet + quad)


def draw_group_effects(
    stats: GroupStats, theta, sigma, tau, corr, *, rng: np.random.Generator
) -> np.ndarray:
    """Exact draws of the standardised group effects ``u_j``, shape (D, J, q).

    ``z_j | y, theta, S, sigma ~ N(A_j^-1 g_j / sigma^2, A_j^-1)`` and ``u_j = L z_j``.
    """
    _, g, A, L = _conditional_parts(stats, theta, sigma, tau, corr)
    s2 = (sigma**2)[:, None, None]
    mean = np.linalg.solve(A, g[..., None])[..., 0] / s2
    # z = mean + C^-T eps with A = C C'  gives cov A^-1.
    C = np.linalg.cholesky(A)
    eps = rng.standard_normal(mean.shape)
    z = mean + np.linalg.solve(np.swapaxes(C, -1, -2), eps[..., None])[..., 0]
    return np.einsum("dab,djb->dja", L, z)
