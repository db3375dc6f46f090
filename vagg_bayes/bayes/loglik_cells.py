"""Per-group marginal log-likelihood of a logit model with group-time effects (Laplace).

The LOO unit of every grouped model is the group with its random effects integrated out
(MATH.md section 5; :mod:`vagg_bayes.bayes.loglik`). A logit model with group-time
(cell) effects has, per group ``j``, the city effects ``u_j`` (``q`` of them) and one
effect per period ``e_jt``; given the draw's parameters::

    log p(y_j) = log ∫ prod_i Bernoulli(y_i | logit^-1(x_i' beta + w_i' u + e_t(i)))
                 N(u; 0, S) prod_t N(e_t; 0, sd_cell^2) du de

In whitened coordinates ``w = (v, z)``, ``u = L v`` (``L L' = S``), ``e = sd_cell z``, the
log integrand is ``f(w) = l(w) - |w|^2 / 2``, concave, and the Laplace approximation is
``f(w_hat) - log det(H) / 2`` with ``H = -f''(w_hat)``. The dimension is ``q + T``
(``T`` periods; a period without rows in the group adds nothing), the mode is found by
Newton steps with step halving, vectorised over draws and groups, and the rows enter
through per-cell sums (rows sorted by cell, cells by group and period).

Accuracy against brute-force quadrature (``tests/bayes/test_loglik_cells.py``): on groups
of 2 cells of 6-12 rows with SDs up to 1 the Laplace error of a group's value was at most
0.02 with varying intercepts and 0.048 with a varying slope (median 0.013 and 0.034); it
shrinks as cells grow (O(1 / rows per cell)). The same models are compared with the same
rule, so LOO differences carry less of it.

May import: numpy, vagg_bayes.bayes.design, vagg_bayes.bayes.glm (cell index),
vagg_bayes.bayes.loglik (flattening, prior factor, softplus).
"""

from __future__ import annotations

import numpy as np

from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.glm import cell_index
from vagg_bayes.bayes.loglik import _flat, _prior_factor, _softplus_sigmoid

_ROW_DRAWS = 1 << 18  # rows x draws per chunk
_MAX_ITER = 60
_TOL = 1e-12  # Newton decrement
_MAX_HALVINGS = 30


class _Cells:
    """Rows sorted by cell; each cell's group and period; sums over a cell's rows."""

    def __init__(self, design: Design):
        codes, self.group, self.time = cell_index(design)
        order = np.argsort(codes, kind="stable")
        self.n_cells = self.group.size
        counts = np.bincount(codes, minlength=self.n_cells)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.X = design.X[order]
        self.y = design.y[order].astype(float)
        self.W = [self.X[:, k] for k in design.varying]  # the varying columns
        self.cell = codes[order]
        self.row_group = self.group[self.cell]
        self.J = design.n_groups
        self.T = int(design.time_codes.max()) + 1
        self.q = len(design.varying)
        # Pairs of varying columns whose weighted products give the curvature.
        self.pairs = [(a, b) for a in range(self.q) for b in range(a + 1)]

    def cellsum(self, x: np.ndarray) -> np.ndarray:
        """Sums over each cell's rows along the last axis."""
        return np.add.reduceat(x, self.starts, axis=-1)


def _evaluate(c: _Cells, offset: np.ndarray, L: np.ndarray, s: np.ndarray, w: np.ndarray):
    """``f``, its gradient and ``H = -f''`` at ``w`` (D, J, q + T)."""
    D, q, T, J = offset.shape[0], c.q, c.T, c.J
    v, z = w[..., :q], w[..., q:]
    u = (L[:, None] @ v[..., None])[..., 0]  # (D, J, q)
    e = s[:, None, None] * z  # (D, J, T)
    eta = offset + e[:, c.row_group, c.time[c.cell]]
    for a, W in enumerate(c.W):
        eta += u[:, c.row_group, a] * W
    sp, p = _softplus_sigmoid(eta)
    r = c.y - p
    lam = p * (1.0 - p)
    # Per-cell sums, in this order: the log-likelihood, r and lam (the cells' own
    # gradient and curvature), then per varying column r w_a and lam w_a, then
    # lam w_a w_b per pair.
    parts = [c.y * eta - sp, r, lam, *(r * W for W in c.W), *(lam * W for W in c.W),
             *(lam * c.W[a] * c.W[b] for a, b in c.pairs)]
    sums = c.cellsum(np.stack(parts, axis=1))  # (D, k, n_cells)
    ll_cell, r_cell, lam_cell = sums[:, 0], sums[:, 1], sums[:, 2]
    rw_cell = sums[:, 3:3 + q]
    lw_cell = sums[:, 3 + q:3 + 2 * q]
    ww_cell = sums[:, 3 + 2 * q:]

    def groups(x):  # (D, n_cells) -> (D, J)
        out = np.zeros((D, J))
        for d in range(D):
            out[d] = np.bincount(c.group, weights=x[d], minlength=J)
        return out

    def slots(x):  # (D, n_cells) -> (D, J, T), zero where a group lacks a period
        out = np.zeros((D, J, T))
        out[:, c.group, c.time] = x
        return out

    f = groups(ll_cell) - 0.5 * (w * w).sum(-1)
    gu = np.stack([groups(rw_cell[:, a]) for a in range(q)], axis=-1)  # (D, J, q)
    Lt = np.swapaxes(L, -1, -2)[:, None]  # (D, 1, q, q)
    grad = np.empty_like(w)
    grad[..., :q] = (Lt @ gu[..., None])[..., 0] - v
    grad[..., q:] = s[:, None, None] * slots(r_cell) - z
    H = np.zeros(w.shape + (q + T,))
    A = np.empty((D, J, q, q))
    for k, (a, b) in enumerate(c.pairs):
        A[..., a, b] = A[..., b, a] = groups(ww_cell[:, k])
    H[..., :q, :q] = Lt @ A @ L[:, None]
    # (u, e) block: L' (sum over the cell's rows of lam w) sd_cell
    B = np.stack([slots(lw_cell[:, a]) for a in range(q)], axis=-2)  # (D, J, q, T)
    cross = (Lt @ B) * s[:, None, None, None]
    H[..., :q, q:] = cross
    H[..., q:, :q] = np.swapaxes(cross, -1, -2)
    idx = np.arange(T)
    H[..., q + idx, q + idx] = (s**2)[:, None, None] * slots(lam_cell)
    H += np.eye(q + T)
    return f, grad, H


def bernoulli_cell_group_loglik(design: Design, beta, group_sd, group_corr, cell_sd
                                ) -> np.ndarray:
    """Per-group marginal log-likelihood (D, J) of a logit model with group-time effects.

    ``beta`` (..., p), ``group_sd`` (..., q), ``group_corr`` (...) or None, ``cell_sd``
    (...) on the data (logit) scale, leading (chain, draw) axes flattened; ``design``
    with a group and group-time cells (``design.time_codes``). Laplace approximation
    (module docstring).
    """
    if design.group_codes is None or design.time_codes is None:
        raise ValueError("bernoulli_cell_group_loglik needs a design with group-time cells")
    c = _Cells(design)
    beta = _flat(beta, 1, "beta")
    sd = _flat(group_sd, 1, "group_sd")
    s = np.asarray(cell_sd, dtype=float).reshape(-1)
    corr = None if group_corr is None else np.asarray(group_corr, dtype=float).reshape(-1)
    L_all = _prior_factor(sd, corr)
    D = beta.shape[0]
    out = np.empty((D, c.J))
    step_draws = max(1, _ROW_DRAWS // max(len(c.y), 1))
    w0 = np.zeros((c.J, c.q + c.T))
    for lo in range(0, D, step_draws):
        sl = slice(lo, min(lo + step_draws, D))
        offset = beta[sl] @ c.X.T
        L, s_sl = L_all[sl], s[sl]
        w = np.broadcast_to(w0, (offset.shape[0], c.J, c.q + c.T)).copy()
        f, g, H = _evaluate(c, offset, L, s_sl, w)
        for _ in range(_MAX_ITER):
            step = np.linalg.solve(H, g[..., None])[..., 0]
            dec = (g * step).sum(-1)
            pending = dec > _TOL
            if not pending.any():
                break
            t = np.ones(dec.shape)
            for _ in range(_MAX_HALVINGS):
                trial = np.where(pending[..., None], w + t[..., None] * step, w)
                f2, g2, H2 = _evaluate(c, offset, L, s_sl, trial)
                ok = pending & (f2 >= f + 1e-4 * t * dec - 1e-12 * (1.0 + np.abs(f)))
                w = np.where(ok[..., None], trial, w)
                f = np.where(ok, f2, f)
                g = np.where(ok[..., None], g2, g)
                H = np.where(ok[..., None, None], H2, H)
                pending &= ~ok
                if not pending.any():
                    break
                t[pending] *= 0.5
        _, logdet = np.linalg.slogdet(H)
        out[sl] = f - 0.5 * logdet
        w0 = w.mean(axis=0)  # warm start for the next chunk
    return out
