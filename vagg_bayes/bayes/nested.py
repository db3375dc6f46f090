"""Gaussian regression with unit, group-time and group effects, all integrated out exactly.

Per group ``j`` (a city) with rows ``i``, unit ``f(i)`` (a firm, nested in the group)
and time ``t(i)`` (MATH.md section 8)::

    y = Z theta + a_f(i) + c_j,t(i) + w_i' u_j + e,
    a_f ~ N(0, sd_unit^2),  c_jt ~ N(0, sd_cell^2),  u_j ~ N(0, S),  e ~ N(0, s^2)

Firms and years are crossed inside a city. The marginal covariance of city ``j`` is
``V = A + W G W'`` with ``A = s^2 I + sd_unit^2 Zf Zf'`` (block-diagonal by unit),
``W = [cell indicators, varying columns]`` (``m`` columns) and ``G = L L'``,
``L = blockdiag(sd_cell I_T, chol(S))``. Per unit block of ``n`` rows
``A_f^-1 = (I - k(n) 1 1') / s^2`` with ``k(n) = sd_unit^2 / (s^2 + n sd_unit^2)`` and
``log det A_f = n log s^2 + log(1 + n sd_unit^2 / s^2)``; Woodbury and the determinant
lemma on ``W`` give, with ``r = y - Z theta``, ``K = W'A^-1 W``, ``h = W'A^-1 r``,
``M = I + L'KL`` and ``g = L'h``::

    r'V^-1 r = r'A^-1 r - g' M^-1 g,      log det V = log det A + log det M

Every term is a sum over units whose weight depends on the parameters only through the
unit's row count ``n``. With ``Y = [y, Z]``, ``e = (1, -theta)`` (so ``r = Y e``) and
the unit sums ``S_f = 1'Y_f``, one pass over the rows gives everything (``c`` runs over
the distinct unit sizes)::

    r'A^-1 r = (e' R e - sum_c k(c) e' Q_c e) / s^2        R = Y'Y,  Q_c = sum_{n_f = c} S_f S_f'
    K_j      = (W_j'W_j - sum_c k(c) N_jc) / s^2           N_jc = sum_{f in j, n_f = c} (W_f'1)(W_f'1)'
    h_j      = (W_j'Y_j e - sum_c k(c) P_jc e) / s^2        P_jc = sum_{f in j, n_f = c} (W_f'1) S_f'

so a gradient costs ``O(C k^2 + J C m k + J m^3)`` (``k = p + 1``, ``C`` distinct unit
sizes, at most the number of periods), whatever the number of rows and units. The
``m x m`` determinants and solves of every group go through one batched NumPy
operation (:class:`LogdetQuad`) whose gradient is written out
(``d log det M = tr(M^-1 dM)``, ``d g'M^-1 g = 2 b'dg - b'dM b`` with ``b = M^-1 g``).

``unit_mode``: ``"random"`` as above; ``"fixed"`` the limit ``sd_unit -> inf``
(``k(n) = 1/n``, the within transformation, a flat prior on the unit effects:
``log det A_f = (n - 1) log s^2`` up to a constant); ``"none"`` no unit effects.

The sampled vector is whitened at a Laplace approximation exactly as in
:mod:`vagg_bayes.bayes.collapsed`. Afterwards the group and cell effects are drawn
from their exact conditional posterior ``z ~ N(M^-1 g, M^-1)``, ``(c_j, u_j) = L z``,
and the marginal log-likelihood of every group is computed from the same pieces.

May import: numpy, scipy, pytensor, pymc, vagg_bayes.bayes.design,
vagg_bayes.bayes.priors, vagg_bayes.bayes.collapsed (whitening helpers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from vagg_bayes.bayes.collapsed import LOG_2PI, compile_logp_grad, whiten_or_warn
from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.priors import Priors

_DRAW_CHUNK = 100  # posterior draws processed at once afterwards


def likelihood_unit_mode(design: Design) -> str:
    """``"random"`` (finite unit SD: ``within`` and ``random``), ``"fixed"`` or ``"none"``."""
    return {"within": "random", "random": "random"}.get(design.unit_effects,
                                                        design.unit_effects)


@dataclass(frozen=True, eq=False)
class NestedStats:
    """Sufficient statistics of the nested model (standardised scale, ``k = p + 1``).

    Attributes
    ----------
    R : ndarray (J, k, k)
        ``Y_j'Y_j`` per group, ``Y = [y, Z]``.
    sizes : ndarray (C,)
        The distinct unit sizes (rows per unit); empty without unit effects.
    units : ndarray (J, C)
        Units of each size in each group.
    Q : ndarray (J, C, k, k)
        ``sum S_f S_f'`` over the units of each size in each group.
    WY : ndarray (J, m, k), WW : ndarray (J, m, m)
        ``W_j'Y_j`` and ``W_j'W_j``.
    P : ndarray (J, C, m, k), N : ndarray (J, C, m, m)
        ``sum (W_f'1) S_f'`` and ``sum (W_f'1)(W_f'1)'`` per group and unit size.
    n_rows : ndarray (J,)
    n_cells : int
        ``T``: cell-indicator columns at the start of ``W`` (0 without cell effects).
    q : int
        Varying (group-level random) columns at the end of ``W``.
    unit_mode : {"random", "fixed", "none"}
    """

    R: np.ndarray
    sizes: np.ndarray
    units: np.ndarray
    Q: np.ndarray
    WY: np.ndarray
    WW: np.ndarray
    P: np.ndarray
    N: np.ndarray
    n_rows: np.ndarray
    n_cells: int
    q: int
    unit_mode: str

    @property
    def m(self) -> int:
        """Columns of ``W``."""
        return self.n_cells + self.q


def _block_sums(codes: np.ndarray, n_blocks: int, A: np.ndarray) -> np.ndarray:
    """``sum_i A_i`` over the rows of each block: (n_blocks, A.shape[1])."""
    from scipy import sparse

    ind = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))),
                            shape=(n_blocks, len(codes)))
    return np.asarray(ind @ A)


def _block_crossproducts(codes: np.ndarray, n_blocks: int, A: np.ndarray,
                         B: np.ndarray) -> np.ndarray:
    """``A_b'B_b`` for every block ``b`` of rows: (n_blocks, A.shape[1], B.shape[1])."""
    out = np.zeros((n_blocks, A.shape[1], B.shape[1]))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_blocks + 1))
    As, Bs = A[order], B[order]
    for b in range(n_blocks):
        lo, hi = bounds[b], bounds[b + 1]
        if hi > lo:
            out[b] = As[lo:hi].T @ Bs[lo:hi]
    return out


def nested_statistics(design: Design) -> NestedStats:
    """One pass over the rows: every statistic of :class:`NestedStats`."""
    Y = np.column_stack([design.y, design.Z])
    k = Y.shape[1]
    if design.group_codes is None:
        gcodes, J = np.zeros(design.n, dtype=np.int64), 1
    else:
        gcodes, J = design.group_codes, design.n_groups
    T = 0 if design.time_codes is None else int(design.time_codes.max()) + 1
    varying = list(design.varying)
    q = len(varying)
    W_parts = []
    if T:
        W_parts.append(np.eye(T)[design.time_codes])
    if q:
        W_parts.append(design.Z[:, varying])
    W = np.column_stack(W_parts) if W_parts else np.empty((design.n, 0))
    m = W.shape[1]
    R = _block_crossproducts(gcodes, J, Y, Y)
    WY = _block_crossproducts(gcodes, J, W, Y)
    WW = _block_crossproducts(gcodes, J, W, W)
    n_rows = np.bincount(gcodes, minlength=J).astype(float)
    mode = likelihood_unit_mode(design)
    if mode == "none":
        empty = np.zeros((J, 0))
        return NestedStats(R, np.zeros(0), empty, np.zeros((J, 0, k, k)), WY, WW,
                           np.zeros((J, 0, m, k)), np.zeros((J, 0, m, m)), n_rows, T, q, mode)
    ucodes, F = design.unit_codes, design.n_units
    S = _block_sums(ucodes, F, Y)  # (F, k) unit sums
    Wsum = _block_sums(ucodes, F, W)  # (F, m)
    size = np.bincount(ucodes, minlength=F)
    unit_group = np.zeros(F, dtype=np.int64)
    unit_group[ucodes] = gcodes
    sizes, size_code = np.unique(size, return_inverse=True)
    C = len(sizes)
    block = unit_group * C + size_code  # (group, size) block of every unit
    units = np.bincount(block, minlength=J * C).reshape(J, C).astype(float)
    Q = _block_crossproducts(block, J * C, S, S).reshape(J, C, k, k)
    P = _block_crossproducts(block, J * C, Wsum, S).reshape(J, C, m, k)
    N = _block_crossproducts(block, J * C, Wsum, Wsum).reshape(J, C, m, m)
    return NestedStats(R, sizes.astype(float), units, Q, WY, WW, P, N, n_rows, T, q, mode)


# --------------------------------------------------------------------------- the batched op


def _lower_inverse(chol: np.ndarray) -> np.ndarray:
    """Inverses of a batch of lower-triangular matrices, by forward substitution over the
    (few) rows, vectorised over the batch (several times faster than ``np.linalg.inv``
    on many small matrices)."""
    m = chol.shape[-1]
    out = np.zeros_like(chol)
    diag = 1.0 / np.diagonal(chol, axis1=-2, axis2=-1)
    for i in range(m):
        out[..., i, i] = diag[..., i]
        if i:
            # row i of C^-1: -(C[i, :i] @ X[:i, :i]) / C[i, i]
            out[..., i, :i] = -(chol[..., i, None, :i] @ out[..., :i, :i])[..., 0, :] \
                * diag[..., i, None]
    return out


@functools.cache
def _logdet_quad_op():
    """The Op ``(M (J, m, m), g (J, m)) -> (log det M_j, g_j'M_j^-1 g_j)`` with its gradient."""
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class LogdetQuad(Op):
        """Batched log-determinant and quadratic form of symmetric positive definite blocks.

        Outputs ``logdet (J,)``, ``quad (J,)`` and, for the gradient, ``M^-1`` and
        ``b = M^-1 g``; only the first two may be differentiated.
        """

        __props__ = ()

        def make_node(self, M, g):
            M = pt.as_tensor_variable(M)
            g = pt.as_tensor_variable(g)
            outs = [pt.dvector(), pt.dvector(), pt.dtensor3(), pt.dmatrix()]
            return Apply(self, [M, g], outs)

        def perform(self, node, inputs, outputs):
            M, g = inputs
            try:
                chol = np.linalg.cholesky(M)
            except np.linalg.LinAlgError:
                # only at extreme trial points (a line search, a divergent trajectory):
                # a density of zero there, which the caller steps back from
                outputs[0][0] = np.full(M.shape[0], np.inf)
                outputs[1][0] = np.zeros(M.shape[0])
                outputs[2][0] = np.zeros_like(M)
                outputs[3][0] = np.zeros_like(g)
                return
            logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
            chol_inv = _lower_inverse(chol)
            inv = np.swapaxes(chol_inv, -1, -2) @ chol_inv  # M^-1 = C^-T C^-1
            b = (inv @ g[..., None])[..., 0]
            outputs[0][0] = logdet
            outputs[1][0] = np.einsum("ja,ja->j", g, b)
            outputs[2][0] = inv
            outputs[3][0] = b

        def grad(self, inputs, output_grads):
            from pytensor.gradient import DisconnectedType

            M, g = inputs
            _, _, inv, b = self(M, g)
            g_logdet, g_quad = output_grads[0], output_grads[1]
            grad_M = pt.zeros_like(M)
            grad_g = pt.zeros_like(g)
            if not isinstance(g_logdet.type, DisconnectedType):
                grad_M = grad_M + g_logdet[:, None, None] * inv
            if not isinstance(g_quad.type, DisconnectedType):
                grad_M = grad_M - g_quad[:, None, None] * (b[:, :, None] * b[:, None, :])
                grad_g = grad_g + 2.0 * g_quad[:, None] * b
            return [grad_M, grad_g]

        def connection_pattern(self, node):
            return [[True, True, False, False], [True, True, False, False]]

    return LogdetQuad()


# --------------------------------------------------------------------------- the model


def unconstrained_layout(design: Design, stats: NestedStats) -> list[str]:
    """Names of the entries of the unconstrained vector ``v``."""
    names = [f"theta[{t}]" for t in design.terms] + ["log_sigma"]
    if stats.unit_mode == "random":
        names.append("log_sd_unit")
    if stats.n_cells:
        names.append("log_sd_cell")
    names += [f"log_tau[{design.terms[k]}]" for k in design.varying]
    if stats.q == 2:
        names.append("logit_corr")
    return names


def _pytensor_arrays(stats: NestedStats) -> dict:
    """The statistics the sampled density reads (pooled where the density allows)."""
    return {
        "R": stats.R.sum(axis=0),
        "Q": stats.Q.sum(axis=0),
        "F": stats.units.sum(axis=0),
        "sizes": stats.sizes,
        "WY": stats.WY,
        "WW": stats.WW,
        "P": stats.P,
        "N": stats.N,
        "n": np.asarray(stats.n_rows.sum()),
    }


def _unconstrained_logp(v, a: dict, pri: dict, stats: NestedStats, p: int):
    """Log posterior density of ``v`` (up to a constant) and the constrained parameters."""
    import pytensor.tensor as pt

    q, T, m = stats.q, stats.n_cells, stats.m
    theta = v[:p]
    log_sigma = v[p]
    sigma = pt.exp(log_sigma)
    s2 = sigma**2
    lp = -0.5 * pt.sum(((theta - pri["theta_mu"]) / pri["theta_sd"]) ** 2)
    lp = lp - pri["sigma_rate"] * sigma + log_sigma
    pos = p + 1
    out = {"theta": theta, "sigma": sigma}

    def half_normal(log_x):
        x = pt.exp(log_x)
        return x, -0.5 * (x / pri["tau_scale"]) ** 2 + log_x

    if stats.unit_mode == "random":
        out["sd_unit"], lp_u = half_normal(v[pos])
        lp = lp + lp_u
        pos += 1
    if T:
        out["sd_cell"], lp_c = half_normal(v[pos])
        lp = lp + lp_c
        pos += 1
    if q:
        tau, lp_t = half_normal(v[pos : pos + q])
        lp = lp + pt.sum(lp_t)
        out["tau"] = tau
        pos += q
    if q == 2:
        x = v[pos]
        out["corr"] = pt.tanh(x / 2)
        lp = lp - pri["lkj_eta"] * (pt.softplus(x) + pt.softplus(-x))

    e = pt.concatenate([pt.ones(1), -theta])
    ee = e[:, None] * e[None, :]
    eRe = pt.sum(a["R"] * ee)
    if stats.unit_mode == "none":
        rAr = eRe / s2
        logdet_A = a["n"] * pt.log(s2)
        kc = None
    else:
        eQe = pt.sum(a["Q"] * ee[None], axis=(1, 2))  # (C,)
        if stats.unit_mode == "random":
            ta2 = out["sd_unit"] ** 2
            kc = ta2 / (s2 + a["sizes"] * ta2)
            logdet_A = pt.sum(a["F"] * (a["sizes"] * pt.log(s2)
                                        + pt.log1p(a["sizes"] * ta2 / s2)))
        else:
            kc = 1.0 / a["sizes"]
            logdet_A = pt.sum(a["F"] * (a["sizes"] - 1.0)) * pt.log(s2)
        rAr = (eRe - pt.sum(kc * eQe)) / s2
    logdet_V, quad_V = logdet_A, rAr
    if m:
        WYe = pt.tensordot(a["WY"], e, axes=[[2], [0]])  # (J, m)
        WW = a["WW"]
        if kc is not None:
            Pe = pt.tensordot(a["P"], e, axes=[[3], [0]])  # (J, C, m)
            WYe = WYe - pt.sum(Pe * kc[None, :, None], axis=1)
            WW = WW - pt.sum(a["N"] * kc[None, :, None, None], axis=1)
        h, K = WYe / s2, WW / s2
        L = _cholesky_of_G(out, T, q, m)
        KL = pt.tensordot(K, L, axes=[[2], [0]])  # (J, m, m): K L
        M = pt.eye(m)[None] + pt.tensordot(KL, L, axes=[[1], [0]]).dimshuffle(0, 2, 1)
        g = pt.dot(h, L)  # rows: L'h
        logdet_M, quad_M = _logdet_quad_op()(M, g)[:2]
        logdet_V = logdet_V + pt.sum(logdet_M)
        quad_V = quad_V - pt.sum(quad_M)
    loglik = -0.5 * (a["n"] * LOG_2PI + logdet_V + quad_V)
    return lp + loglik, out


def _cholesky_of_G(par: dict, T: int, q: int, m: int):
    """``L`` (m x m, PyTensor): ``sd_cell I_T`` then the Cholesky factor of ``S``."""
    import pytensor.tensor as pt

    L = pt.zeros((m, m))
    if T:
        idx = np.arange(T)
        L = pt.set_subtensor(L[idx, idx], par["sd_cell"])
    if q:
        tau = par["tau"]
        L = pt.set_subtensor(L[T, T], tau[0])
    if q == 2:
        corr = par["corr"]
        L = pt.set_subtensor(L[T + 1, T], tau[1] * corr)
        L = pt.set_subtensor(L[T + 1, T + 1], tau[1] * pt.sqrt(1 - corr**2))
    return L


def _start_point(stats: NestedStats, priors: Priors, design: Design,
                 names: list[str]) -> np.ndarray:
    """Pooled least squares (within units for ``"fixed"``) and modest variance components."""
    p = design.p
    R = stats.R.sum(axis=0)
    ZZ, Zy = R[1:, 1:], R[1:, 0]
    try:
        theta = np.linalg.lstsq(ZZ, Zy, rcond=None)[0]
    except np.linalg.LinAlgError:
        theta = np.asarray(priors.theta_mu, dtype=float).copy()
    N = float(stats.n_rows.sum())
    rss = float(R[0, 0] - 2 * theta @ Zy + theta @ ZZ @ theta)
    sigma = np.sqrt(max(rss / max(N - p, 1.0), 1e-12))
    v = np.full(len(names), np.log(0.3 * sigma))
    v[:p] = theta
    v[p] = np.log(0.8 * sigma)
    if stats.q == 2:
        v[-1] = 0.0
    return v


def build_nested_model(design: Design, priors: Priors, stats: NestedStats | None = None, *,
                       whiten: bool = True):
    """PyMC model of the nested Gaussian regression, every random effect integrated out.

    Returns
    -------
    pymc.Model
        One free variable ``w`` (whitened unconstrained parameters); deterministics
        ``theta`` (standardised coefficients), ``sigma`` and, where the model has them,
        ``sd_unit``, ``sd_cell``, ``tau`` (group SDs, standardised scale) and ``corr``.
        ``model.whitening`` holds ``m``, ``C``, the names of ``v`` and whether the mode
        search converged.

    Notes
    -----
    Priors: ``theta ~ N(theta_mu, theta_sd)``, ``sigma ~ Exponential(sigma_rate)``,
    ``sd_unit, sd_cell, tau ~ HalfNormal(tau_scale)``, ``(1 + corr) / 2 ~ Beta(eta,
    eta)``. Every data array is a shared variable: the compiled code is reused for
    data of the same shapes.
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    stats = stats if stats is not None else nested_statistics(design)
    p = design.p
    names = unconstrained_layout(design, stats)
    a = {key: pytensor.shared(np.asarray(val, dtype=float), name=key)
         for key, val in _pytensor_arrays(stats).items()}
    pri = {key: pytensor.shared(np.asarray(val, dtype=float), name=key) for key, val in {
        "theta_mu": priors.theta_mu, "theta_sd": priors.theta_sd,
        "sigma_rate": priors.sigma_rate, "tau_scale": priors.tau_scale,
        "lkj_eta": priors.lkj_eta}.items()}
    size = len(names)
    shift, factor, converged = np.zeros(size), np.eye(size), False
    logp_grad = None
    if whiten:
        logp_grad = compile_logp_grad(lambda v: _unconstrained_logp(v, a, pri, stats, p)[0])
        shift, factor, converged = whiten_or_warn(
            logp_grad, _start_point(stats, priors, design, names))
    coords = {"term": list(design.terms), "unconstrained": names}
    if stats.q:
        coords["varying"] = [design.terms[k] for k in design.varying]
    shift_sh = pytensor.shared(shift, name="whiten_m")
    factor_sh = pytensor.shared(factor, name="whiten_C")
    with pm.Model(coords=coords) as model:
        w = pm.Flat("w", dims="unconstrained")
        v = shift_sh + pt.sum(factor_sh * w[None, :], axis=1)
        lp, par = _unconstrained_logp(v, a, pri, stats, p)
        pm.Potential("logp", lp)
        pm.Deterministic("theta", par["theta"], dims="term")
        pm.Deterministic("sigma", par["sigma"])
        for name in ("sd_unit", "sd_cell"):
            if name in par:
                pm.Deterministic(name, par[name])
        if "tau" in par:
            pm.Deterministic("tau", par["tau"], dims="varying")
        if "corr" in par:
            pm.Deterministic("corr", par["corr"])
    model.whitening = {"m": shift, "C": factor, "names": names, "converged": converged}

    def update(new_design: Design) -> NestedStats:
        """Point the compiled model at new data of the same spec (frozen priors)."""
        new_stats = nested_statistics(new_design)
        if (new_stats.m, new_stats.unit_mode, new_stats.q) != (stats.m, stats.unit_mode,
                                                               stats.q):
            raise ValueError("The new data change the model's structure (cells, unit effects "
                             "or varying columns); build a new model instead.")
        for key, val in _pytensor_arrays(new_stats).items():
            a[key].set_value(np.asarray(val, dtype=float))
        if logp_grad is not None:
            m_new, C_new, ok = whiten_or_warn(
                logp_grad, _start_point(new_stats, priors, new_design, names))
            shift_sh.set_value(m_new)
            factor_sh.set_value(C_new)
            model.whitening = {"m": m_new, "C": C_new, "names": names, "converged": ok}
        return new_stats

    model.update_data = update
    return model


# --------------------------------------------------------------------------- afterwards


@dataclass(frozen=True)
class NestedDraws:
    """Posterior draws of the parameters a nested fit needs afterwards (flattened draws)."""

    theta: np.ndarray  # (D, p)
    sigma: np.ndarray  # (D,)
    sd_unit: np.ndarray | None = None  # (D,)
    sd_cell: np.ndarray | None = None  # (D,)
    tau: np.ndarray | None = None  # (D, q)
    corr: np.ndarray | None = None  # (D,)

    def take(self, sl: slice) -> NestedDraws:
        """The draws in ``sl``."""
        return NestedDraws(*(None if x is None else x[sl] for x in
                             (self.theta, self.sigma, self.sd_unit, self.sd_cell, self.tau,
                              self.corr)))


def _cholesky_np(draws: NestedDraws, T: int, q: int) -> np.ndarray:
    """``L`` per draw: (D, m, m)."""
    D = draws.theta.shape[0]
    m = T + q
    L = np.zeros((D, m, m))
    if T:
        L[:, np.arange(T), np.arange(T)] = draws.sd_cell[:, None]
    if q:
        L[:, T, T] = draws.tau[:, 0]
    if q == 2:
        L[:, T + 1, T] = draws.tau[:, 1] * draws.corr
        L[:, T + 1, T + 1] = draws.tau[:, 1] * np.sqrt(1 - draws.corr**2)
    return L


def _group_parts(stats: NestedStats, draws: NestedDraws):
    """Per draw and group: ``r'A^-1 r``, ``log det A``, ``M``, ``g`` and ``L``."""
    D = draws.theta.shape[0]
    e = np.column_stack([np.ones(D), -draws.theta])  # (D, k)
    s2 = draws.sigma**2  # (D,)
    J = stats.R.shape[0]
    ee = np.einsum("dk,dl->dkl", e, e).reshape(D, -1)
    eRe = ee @ stats.R.reshape(J, -1).T  # (D, J)
    n = stats.n_rows[None]
    if stats.unit_mode == "none":
        rAr = eRe / s2[:, None]
        logdet_A = n * np.log(s2)[:, None]
        kc = None
    else:
        C = len(stats.sizes)
        eQe = (ee @ stats.Q.reshape(J * C, -1).T).reshape(D, J, C)
        if stats.unit_mode == "random":
            ta2 = (draws.sd_unit**2)[:, None]
            kc = ta2 / (s2[:, None] + stats.sizes[None] * ta2)  # (D, C)
            per_unit = (stats.sizes[None] * np.log(s2)[:, None]
                        + np.log1p(stats.sizes[None] * ta2 / s2[:, None]))
        else:
            kc = np.broadcast_to(1.0 / stats.sizes, (D, C))
            per_unit = (stats.sizes[None] - 1.0) * np.log(s2)[:, None]
        logdet_A = per_unit @ stats.units.T  # (D, J)
        rAr = (eRe - np.einsum("dc,djc->dj", kc, eQe)) / s2[:, None]
    if not stats.m:
        return rAr, logdet_A, None, None, None
    WYe = np.einsum("jak,dk->dja", stats.WY, e)
    WW = np.broadcast_to(stats.WW, (D, *stats.WW.shape))
    if kc is not None:
        WYe = WYe - np.einsum("dc,jcak,dk->dja", kc, stats.P, e, optimize=True)
        WW = WW - np.einsum("dc,jcab->djab", kc, stats.N, optimize=True)
    h = WYe / s2[:, None, None]
    K = WW / s2[:, None, None, None]
    L = _cholesky_np(draws, stats.n_cells, stats.q)
    M = np.eye(stats.m) + np.einsum("dca,djcb,dbe->djae", L, K, L, optimize=True)
    g = np.einsum("dba,djb->dja", L, h)
    return rAr, logdet_A, M, g, L


def group_effects_and_loglik(stats: NestedStats, draws: NestedDraws, *,
                             rng: np.random.Generator):
    """Exact draws of the cell and group effects, and each group's marginal log-likelihood.

    Returns
    -------
    cells : ndarray (D, J, T) or None
        Cell (group-time) effects.
    groups : ndarray (D, J, q) or None
        Standardised group effects of the varying columns.
    loglik : ndarray (D, J)
        ``log p(y_j | theta, variance components)``, unit and cell effects integrated out
        (for ``"fixed"`` unit effects: up to a constant per unit).
    """
    D = draws.theta.shape[0]
    J, T, q = stats.R.shape[0], stats.n_cells, stats.q
    loglik = np.empty((D, J))
    cells = np.empty((D, J, T)) if T else None
    groups = np.empty((D, J, q)) if q else None
    for start in range(0, D, _DRAW_CHUNK):
        sl = slice(start, min(start + _DRAW_CHUNK, D))
        rAr, logdet_A, M, g, L = _group_parts(stats, draws.take(sl))
        quad = rAr
        logdet = logdet_A
        if M is not None:
            chol = np.linalg.cholesky(M)
            logdet = logdet + 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
            mean = np.linalg.solve(M, g[..., None])[..., 0]
            quad = quad - np.einsum("dja,dja->dj", g, mean)
            # z = mean + chol^-T eps has covariance M^-1; the effects are L z
            eps = rng.standard_normal(mean.shape)
            z = mean + np.linalg.solve(np.swapaxes(chol, -1, -2), eps[..., None])[..., 0]
            effects = np.einsum("dab,djb->dja", L, z)
            if T:
                cells[sl] = effects[..., :T]
            if q:
                groups[sl] = effects[..., T:]
        loglik[sl] = -0.5 * (stats.n_rows[None] * LOG_2PI + logdet + quad)
    return cells, groups, loglik
