"""Gaussian hierarchical regression with the group effects integrated out exactly.

Per group ``j`` (MATH.md section 1)::

    y_j = Z_j theta + W_j u_j + e_j,   e_j ~ N(0, s^2 I),   u_j = L z_j,   z_j ~ N(0, I)

With ``U_j = W_j L``, ``g_j = L' W_j' r_j``, ``A_j = I + L' W_j'W_j L / s^2``::

    r_j' V_j^-1 r_j = (r_j'r_j - g_j' A_j^-1 g_j / s^2) / s^2
    log det V_j     = n_j log s^2 + log det A_j

Everything comes from per-group sufficient statistics (``n_j``, ``y'y``, ``Z'y``,
``Z'Z``) computed in one pass, so a gradient costs ``O(J q p)`` whatever the number of
rows: the residual sum of squares is summed over groups analytically (it needs only the
pooled ``Z'Z``), and only the ``q`` varying columns enter per group. The graph is
written with element-wise operations and sums only (no ``Dot``), so PyTensor fuses it
into a few compiled loops that need no BLAS. This Cholesky form stays finite as a
group SD goes to zero. Afterwards the group effects are drawn from their exact
conditional posterior ``z_j | . ~ N(A_j^-1 g_j / s^2, A_j^-1)``.

The sampled model is *whitened*: all free parameters, mapped to the real line
(``theta``, ``log sigma``, ``log tau``, ``logit((1 + corr) / 2)``), are an affine
function ``v = m + C w`` of one vector ``w`` whose posterior is close to N(0, I)
(``m`` the posterior mode, ``C C'`` the inverse Hessian there: a Laplace
approximation found in a few Newton steps). The affine map has a constant Jacobian,
so the posterior is exactly the same; NUTS (any implementation) then starts in the
bulk with a near-perfect mass matrix, which cuts both warm-up and tree depth.

May import: numpy, scipy, pytensor, pymc, vagg_bayes.bayes.design, vagg_bayes.bayes.priors.
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
    counts = np.bincount(codes, minlength=J)
    yy = np.bincount(codes, weights=y * y, minlength=J)
    Zy = np.empty((J, p))
    ZZ = np.empty((J, p, p))
    if p <= 8:
        # A weighted bincount per product: no sorted copy of Z (cheapest for few columns).
        for k in range(p):
            Zy[:, k] = np.bincount(codes, weights=Z[:, k] * y, minlength=J)
            for m in range(k + 1):
                ZZ[:, k, m] = ZZ[:, m, k] = np.bincount(
                    codes, weights=Z[:, k] * Z[:, m], minlength=J
                )
        return GroupStats(counts.astype(float), yy, Zy, ZZ, design.varying)
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    Zs, ys = Z[order], y[order]
    for j in range(J):
        zj, yj = Zs[bounds[j] : bounds[j + 1]], ys[bounds[j] : bounds[j + 1]]
        ZZ[j] = zj.T @ zj
        Zy[j] = zj.T @ yj
    return GroupStats(counts.astype(float), yy, Zy, ZZ, design.varying)


# --------------------------------------------------------------------------- the log-likelihood


def _stat_arrays(stats: GroupStats) -> dict[str, np.ndarray]:
    """The (few) arrays the collapsed log-likelihood reads, as float64 NumPy arrays.

    Pooled over groups: ``N``, ``yy``, ``Zy`` (p), ``ZZ`` (p, p). Per group, for the
    varying columns ``w``: ``Wy`` (J, q), ``WZ`` (J, q, p) and the entries of ``W'W``
    (``WW00``, ``WW01``, ``WW11``).
    """
    out = {
        "N": np.asarray(stats.n.sum(), dtype=float),
        "yy": np.asarray(stats.yy.sum(), dtype=float),
        "Zy": stats.Zy.sum(axis=0),
        "ZZ": stats.ZZ.sum(axis=0),
    }
    w = list(stats.varying)
    if w:
        out["Wy"] = stats.Zy[:, w]
        out["WZ"] = stats.ZZ[:, w, :]
        out["WW00"] = stats.ZZ[:, w[0], w[0]]
        if len(w) == 2:
            out["WW01"] = stats.ZZ[:, w[0], w[1]]
            out["WW11"] = stats.ZZ[:, w[1], w[1]]
    return out


def _collapsed_logp_from(a: dict, q: int, theta, sigma, tau=None, corr=None):
    """The collapsed log-likelihood from the arrays of :func:`_stat_arrays` (tensors)."""
    import pytensor.tensor as pt

    s2 = sigma**2
    rr = a["yy"] - 2 * pt.sum(a["Zy"] * theta) + pt.sum(a["ZZ"] * theta[:, None] * theta[None, :])
    if not q:
        return -0.5 * (a["N"] * (LOG_2PI + pt.log(s2)) + rr / s2)
    Wr = a["Wy"] - pt.sum(a["WZ"] * theta[None, None, :], axis=2)  # (J, q)
    t0 = tau[0]
    if q == 1:
        A = 1 + t0**2 * a["WW00"] / s2
        logdet = pt.log(A)
        quad_corr = (t0 * Wr[:, 0]) ** 2 / A
    else:
        # L = [[t0, 0], [t1 c, t1 sqrt(1 - c^2)]]; G = L' W'W L, g = L' W'r.
        l10 = tau[1] * corr
        l11 = tau[1] * pt.sqrt(1 - corr**2)
        G00 = t0**2 * a["WW00"] + 2 * t0 * l10 * a["WW01"] + l10**2 * a["WW11"]
        G01 = l11 * (t0 * a["WW01"] + l10 * a["WW11"])
        G11 = l11**2 * a["WW11"]
        g0 = t0 * Wr[:, 0] + l10 * Wr[:, 1]
        g1 = l11 * Wr[:, 1]
        a00, a11, a01 = 1 + G00 / s2, 1 + G11 / s2, G01 / s2
        det = a00 * a11 - a01**2
        logdet = pt.log(det)
        quad_corr = (a11 * g0**2 - 2 * a01 * g0 * g1 + a00 * g1**2) / det
    return -0.5 * (
        a["N"] * (LOG_2PI + pt.log(s2)) + pt.sum(logdet) + (rr - pt.sum(quad_corr) / s2) / s2
    )


def collapsed_logp(stats: GroupStats, theta, sigma, tau=None, corr=None):
    """Marginal log-likelihood, group effects integrated out (a PyTensor scalar).

    ``tau`` (q,) and ``corr`` (scalar, only for q = 2) describe the group effects;
    both None without a group.
    """
    return _collapsed_logp_from(_stat_arrays(stats), len(stats.varying), theta, sigma, tau, corr)


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


# --------------------------------------------------------------------------- the model


def _unconstrained_layout(p: int, q: int) -> list[str]:
    """Names of the entries of the unconstrained vector ``v``."""
    names = [f"theta[{k}]" for k in range(p)] + ["log_sigma"]
    names += [f"log_tau[{k}]" for k in range(q)]
    if q == 2:
        names.append("logit_corr")
    return names


def _unconstrained_logp(v, a: dict, pri: dict, p: int, q: int):
    """Log posterior density of the unconstrained vector ``v`` (up to a constant).

    ``v = (theta, log sigma, log tau, logit((1 + corr) / 2))``; the priors are those of
    :class:`Priors` (Normal, Exponential, half-normal, Beta(eta, eta) on
    ``(1 + corr) / 2``, i.e. LKJ(eta) for a 2 x 2 correlation) with the log-Jacobians
    of the maps to the constrained parameters.
    """
    import pytensor.tensor as pt

    theta = v[:p]
    log_sigma = v[p]
    sigma = pt.exp(log_sigma)
    lp = -0.5 * pt.sum(((theta - pri["theta_mu"]) / pri["theta_sd"]) ** 2)
    lp = lp - pri["sigma_rate"] * sigma + log_sigma
    tau = corr = None
    if q:
        log_tau = v[p + 1 : p + 1 + q]
        tau = pt.exp(log_tau)
        lp = lp + pt.sum(-0.5 * (tau / pri["tau_scale"]) ** 2 + log_tau)
    if q == 2:
        x = v[p + 1 + q]
        corr = pt.tanh(x / 2)  # = 2 sigmoid(x) - 1
        lp = lp - pri["lkj_eta"] * (pt.softplus(x) + pt.softplus(-x))
    return lp + _collapsed_logp_from(a, q, theta, sigma, tau, corr), theta, sigma, tau, corr


def _prior_arrays(priors: Priors) -> dict[str, np.ndarray]:
    return {
        "theta_mu": np.asarray(priors.theta_mu, dtype=float),
        "theta_sd": np.asarray(priors.theta_sd, dtype=float),
        "sigma_rate": np.asarray(priors.sigma_rate, dtype=float),
        "tau_scale": np.asarray(priors.tau_scale, dtype=float),
        "lkj_eta": np.asarray(priors.lkj_eta, dtype=float),
    }


def _start_point(stats: GroupStats, priors: Priors, p: int, q: int) -> np.ndarray:
    """A sound starting point: pooled least squares, its residual SD, modest group SDs."""
    ZZ, Zy = stats.ZZ.sum(axis=0), stats.Zy.sum(axis=0)
    N = float(stats.n.sum())
    try:
        theta = np.linalg.solve(ZZ, Zy)
    except np.linalg.LinAlgError:
        theta = np.asarray(priors.theta_mu, dtype=float).copy()
    rss = float(stats.yy.sum() - 2 * theta @ Zy + theta @ ZZ @ theta)
    sigma = np.sqrt(max(rss / max(N - p, 1.0), 1e-12))
    v = [*theta, np.log(sigma)]
    if q:
        v += [np.log(0.5 * sigma)] * q
    if q == 2:
        v.append(0.0)
    return np.asarray(v, dtype=float)


def compile_logp_grad(logp_of):
    """``v -> (logp, grad)`` (floats and a NumPy array) of a PyTensor density of a vector.

    ``logp_of`` maps a symbolic vector to the symbolic log density; compiled once.
    """
    import pytensor
    import pytensor.tensor as pt

    v_sym = pt.dvector("v")
    lp_sym = logp_of(v_sym)
    fn = pytensor.function([v_sym], [lp_sym, pt.grad(lp_sym, v_sym)])

    def logp_grad(x):
        lp, g = fn(x)
        return float(lp), np.asarray(g)

    return logp_grad


def _fd_hessian(grad, v: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Hessian by central differences of the gradient (symmetrised)."""
    k = len(v)
    H = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        H[:, i] = (grad(v + e) - grad(v - e)) / (2 * h[i])
    return 0.5 * (H + H.T)


def _pd_inverse_factor(H_neg: np.ndarray) -> np.ndarray:
    """``C`` with ``C C' = (-H)^-1``, eigenvalues of ``-H`` floored to stay positive."""
    lam, U = np.linalg.eigh(H_neg)
    lam = np.abs(lam)
    lam = np.maximum(lam, max(lam.max(), 1.0) * 1e-10)
    return U / np.sqrt(lam)  # columns scaled: (U diag(lam^-1/2)) (.)' = H^-1


def laplace_whitening(logp_grad, v0: np.ndarray, *, max_iter: int = 60):
    """Posterior mode and a factor of the inverse Hessian there (damped Newton).

    Parameters
    ----------
    logp_grad : callable
        ``v -> (logp, grad)`` of the unconstrained log density.
    v0 : ndarray
        Starting point.

    Returns
    -------
    m : ndarray (k,)
        The mode (or the best point found).
    C : ndarray (k, k)
        A factor of the inverse negative Hessian at ``m`` (``C C' = -H^-1``).
    converged : bool
    """

    def grad(x):
        return logp_grad(x)[1]

    v = np.asarray(v0, dtype=float).copy()
    lp, g = logp_grad(v)
    if not np.isfinite(lp) or not np.all(np.isfinite(g)):
        raise FloatingPointError("log density not finite at the starting point")
    h = np.full(len(v), 1e-5)
    converged = False
    for _ in range(max_iter):
        H = _fd_hessian(grad, v, h)
        if not np.all(np.isfinite(H)):
            break
        C = _pd_inverse_factor(-H)
        step = C @ (C.T @ g)  # Newton step (with |eigenvalues|: always an ascent direction)
        decrement = float(g @ step)
        if decrement < 1e-10:
            converged = True
            break
        # Full Newton step, halved until the density rises.
        t = 1.0
        for _ in range(40):
            lp_new, g_new = logp_grad(v + t * step)
            if np.isfinite(lp_new) and np.all(np.isfinite(g_new)) and lp_new >= lp:
                break
            t *= 0.5
        else:
            break
        v, lp, g = v + t * step, lp_new, g_new
        # Finite-difference steps at a tenth of a thousandth of the current scales.
        h = np.clip(1e-4 * np.sqrt(np.abs(np.diag(C @ C.T))), 1e-9, 1e-3)
    H = _fd_hessian(grad, v, h)
    if not np.all(np.isfinite(H)):
        return v, np.diag(np.maximum(h * 1e4, 1e-6)), False
    return v, np.linalg.cholesky(_cov_from(H)), converged


def _cov_from(H: np.ndarray) -> np.ndarray:
    C = _pd_inverse_factor(-H)
    cov = C @ C.T
    return 0.5 * (cov + cov.T)


def build_collapsed_model(
    design: Design, priors: Priors, stats: GroupStats | None = None, *, whiten: bool = True
):
    """PyMC model of a Gaussian hierarchical regression with the group effects collapsed.

    Parameters
    ----------
    design : Design
    priors : Priors
    stats : GroupStats, optional
        Precomputed statistics (computed from ``design`` when omitted).
    whiten : bool, default True
        Sample ``w`` with ``v = m + C w`` at the Laplace approximation (see the module
        notes); False samples ``v`` itself (``m = 0``, ``C = I``).

    Returns
    -------
    pymc.Model
        One free variable ``w`` (the whitened unconstrained parameters); deterministics
        ``theta`` (standardised coefficients), ``sigma`` and, with a group, ``tau``
        (group-effect SDs, standardised scale) and, for a varying slope, ``corr``. The
        log posterior is a ``Potential`` named ``logp``. ``model.whitening`` holds
        ``m``, ``C``, the names of the entries of ``v`` and whether the mode search
        converged.

    Notes
    -----
    ``y_ij = z_ij' theta + w_ij' u_j + e_ij``, ``u_j ~ N(0, S)``, ``e_ij ~ N(0, sigma^2)``,
    with ``S = diag(tau) R diag(tau)``; the ``u_j`` are integrated out analytically.
    Priors: ``theta ~ N(theta_mu, theta_sd)``, ``sigma ~ Exponential(sigma_rate)``,
    ``tau ~ HalfNormal(tau_scale)``, ``(1 + corr) / 2 ~ Beta(lkj_eta, lkj_eta)``.
    Every data-dependent array enters as a shared variable, so the compiled C code
    is the same for every data set of the same shape and is reused from PyTensor's
    cache.
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    stats = stats if stats is not None else group_statistics(design)
    p, q = design.p, len(design.varying)
    names = _unconstrained_layout(p, q)
    k = len(names)
    a_np, pri_np = _stat_arrays(stats), _prior_arrays(priors)
    a = {key: pytensor.shared(val, name=key) for key, val in a_np.items()}
    pri = {key: pytensor.shared(val, name=key) for key, val in pri_np.items()}

    from vagg_bayes.bayes.collapsed_kernel import CollapsedPosterior

    # The same log posterior and gradient in one compiled loop: PyMC's NUTS calls it
    # instead of the graph below (ChainSampler), and the mode search uses it.
    fast = CollapsedPosterior(a_np, pri_np, q)
    m, C, converged = np.zeros(k), np.eye(k), False
    logp_grad = None
    if whiten:
        logp_grad = fast.unwhitened
        m, C, converged = _whitening(logp_grad, stats, priors, p, q)
    fast.set_whitening(m, C)

    coords = {"term": list(design.terms), "unconstrained": names}
    if q:
        coords["varying"] = [design.terms[j] for j in design.varying]
    m_sh = pytensor.shared(m, name="whiten_m")
    C_sh = pytensor.shared(C, name="whiten_C")
    with pm.Model(coords=coords) as model:
        w = pm.Flat("w", dims="unconstrained")
        v = m_sh + pt.sum(C_sh * w[None, :], axis=1)
        lp, theta, sigma, tau, corr = _unconstrained_logp(v, a, pri, p, q)
        pm.Potential("logp", lp)
        pm.Deterministic("theta", theta, dims="term")
        pm.Deterministic("sigma", sigma)
        if q:
            pm.Deterministic("tau", tau, dims="varying")
        if q == 2:
            pm.Deterministic("corr", corr)
    model.whitening = {"m": m, "C": C, "names": names, "converged": converged}
    model.fast_logp_dlogp = fast

    def update(new_design: Design) -> GroupStats:
        """Point the compiled model at new data of the same spec (frozen priors)."""
        new_stats = group_statistics(new_design)
        arrays = _stat_arrays(new_stats)
        for key, val in arrays.items():
            a[key].set_value(val)
        fast.set_data(arrays)
        if logp_grad is not None:
            m_new, C_new, ok = _whitening(logp_grad, new_stats, priors, p, q)
            m_sh.set_value(m_new)
            C_sh.set_value(C_new)
            fast.set_whitening(m_new, C_new)
            model.whitening = {"m": m_new, "C": C_new, "names": names, "converged": ok}
        return new_stats

    model.update_data = update
    return model


def _whitening(logp_grad, stats: GroupStats, priors: Priors, p: int, q: int):
    """Laplace whitening from the pooled start (:func:`whiten_or_warn`)."""
    return whiten_or_warn(logp_grad, _start_point(stats, priors, p, q))


def whiten_or_warn(logp_grad, start: np.ndarray):
    """:func:`laplace_whitening` from ``start``; the identity (with a warning) if it fails."""
    import warnings

    try:
        return laplace_whitening(logp_grad, start)
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        warnings.warn(
            f"The Laplace approximation that whitens the sampler failed ({exc}); sampling "
            "the unwhitened parameters, which may mix slowly. Remedy: check the data for "
            "extreme scales, or run longer (--tune 2000).", RuntimeWarning, stacklevel=3)
        return start, np.eye(len(start)), False


# --------------------------------------------------------------------------- afterwards


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
    """Per draw and group: rr, g, A and L (NumPy, vectorised over draws).

    ``rr`` (D, J), ``g = L' W'r`` (D, J, q), ``A = I + L' W'W L / s^2`` (D, J, q, q)
    and ``L`` (D, q, q). The products with the statistics are two matrix products:
    ``kron(theta, theta) @ vec(Z'Z)`` and ``theta @ (W'Z)'``.
    """
    D, p = theta.shape
    J = stats.n.shape[0]
    quad = np.einsum("dk,dl->dkl", theta, theta).reshape(D, p * p) @ stats.ZZ.reshape(J, -1).T
    rr = stats.yy[None] - 2 * theta @ stats.Zy.T + quad
    if not stats.varying:
        return rr, None, None, None
    w = list(stats.varying)
    q = len(w)
    WZ = stats.ZZ[:, w, :].reshape(J * q, p)
    Wr = stats.Zy[:, w][None] - (theta @ WZ.T).reshape(D, J, q)  # (D, J, q)
    L = _chol_factor_np(tau, corr)  # (D, q, q)
    s2 = (sigma**2)[:, None, None, None]
    WW = stats.ZZ[:, w][:, :, w]
    G = np.einsum("dab,jbc,dce->djae", L.transpose(0, 2, 1), WW, L, optimize=True)
    A = np.eye(q) + G / s2
    g = np.einsum("dba,djb->dja", L, Wr)  # L' Wr
    return rr, g, A, L


def _solve_parts(A: np.ndarray, g: np.ndarray):
    """``log det A``, ``A^-1 g`` and the lower Cholesky factor of ``A`` (batched, q <= 2
    in closed form)."""
    q = A.shape[-1]
    if q == 1:
        a = A[..., 0, 0]
        return np.log(a), g / a[..., None], np.sqrt(A)
    if q == 2:
        a00, a01, a11 = A[..., 0, 0], A[..., 0, 1], A[..., 1, 1]
        det = a00 * a11 - a01**2
        sol = np.stack([(a11 * g[..., 0] - a01 * g[..., 1]) / det,
                        (a00 * g[..., 1] - a01 * g[..., 0]) / det], axis=-1)
        c00 = np.sqrt(a00)
        c10 = a01 / c00
        C = np.zeros(A.shape)
        C[..., 0, 0], C[..., 1, 0], C[..., 1, 1] = c00, c10, np.sqrt(a11 - c10**2)
        return np.log(det), sol, C
    _, logdet = np.linalg.slogdet(A)
    return logdet, np.linalg.solve(A, g[..., None])[..., 0], np.linalg.cholesky(A)


def group_loglik(stats: GroupStats, theta, sigma, tau=None, corr=None) -> np.ndarray:
    """Marginal log-likelihood of each group for each draw, shape (D, J).

    The group is the unit of prediction: this is what leave-one-group-out
    cross-validation (LOO over cities) needs.
    """
    return _loglik_from(stats, sigma, *_conditional_parts(stats, theta, sigma, tau, corr))


def _loglik_from(stats, sigma, rr, g, A, L):
    s2 = (sigma**2)[:, None]
    if g is None:
        return -0.5 * (stats.n[None] * (LOG_2PI + np.log(s2)) + rr / s2)
    logdet, sol, _ = _solve_parts(A, g)
    quad = (rr - np.einsum("dja,dja->dj", g, sol) / s2) / s2
    return -0.5 * (stats.n[None] * (LOG_2PI + np.log(s2)) + logdet + quad)


def draw_group_effects(
    stats: GroupStats, theta, sigma, tau, corr, *, rng: np.random.Generator
) -> np.ndarray:
    """Exact draws of the standardised group effects ``u_j``, shape (D, J, q).

    ``z_j | y, theta, S, sigma ~ N(A_j^-1 g_j / sigma^2, A_j^-1)`` and ``u_j = L z_j``.
    """
    return _draws_from(sigma, *_conditional_parts(stats, theta, sigma, tau, corr), rng=rng)


def _draws_from(sigma, rr, g, A, L, *, rng):
    s2 = (sigma**2)[:, None, None]
    _, sol, C = _solve_parts(A, g)
    mean = sol / s2
    # z = mean + C^-T eps with A = C C'  gives cov A^-1.
    eps = rng.standard_normal(mean.shape)
    q = mean.shape[-1]
    if q == 1:
        z = mean + eps / C[..., 0, 0][..., None]
    elif q == 2:
        x1 = eps[..., 1] / C[..., 1, 1]
        x0 = (eps[..., 0] - C[..., 1, 0] * x1) / C[..., 0, 0]
        z = mean + np.stack([x0, x1], axis=-1)
    else:
        z = mean + np.linalg.solve(np.swapaxes(C, -1, -2), eps[..., None])[..., 0]
    return np.einsum("dab,djb->dja", L, z)


def group_effects_and_loglik(stats: GroupStats, theta, sigma, tau=None, corr=None, *,
                             rng: np.random.Generator):
    """:func:`draw_group_effects` and :func:`group_loglik` from one pass over the draws.

    Returns ``(u, loglik)``; ``u`` is None without varying effects.
    """
    parts = _conditional_parts(stats, theta, sigma, tau, corr)
    u = _draws_from(sigma, *parts, rng=rng) if parts[1] is not None else None
    return u, _loglik_from(stats, sigma, *parts)
