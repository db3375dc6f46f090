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
sizes, at most the number of periods), whatever the number of rows and units. Every
per-group step (``K``, ``h``, ``M``, ``g``, the ``m x m`` Cholesky factors, determinants
and solves, and their sums) runs in one numba kernel (:func:`_group_terms_py`) whose
gradient is written out (``d log det M = tr(M^-1 dM)``, ``d g'M^-1 g = 2 b'dg - b'dM b``
with ``b = M^-1 g``) and computed in the same pass.

``unit_mode``: ``"random"`` as above; ``"fixed"`` the limit ``sd_unit -> inf``
(``k(n) = 1/n``, the within transformation, a flat prior on the unit effects:
``log det A_f = (n - 1) log s^2`` up to a constant); ``"none"`` no unit effects.

The sampled vector is whitened at a Laplace approximation exactly as in
:mod:`vagg_bayes.bayes.collapsed`. Afterwards the group and cell effects are drawn
from their exact conditional posterior ``z ~ N(M^-1 g, M^-1)``, ``(c_j, u_j) = L z``,
and the marginal log-likelihood of every group is computed from the same pieces.

May import: numpy, scipy, pytensor, pymc, numba (a dependency of pytensor; imported
when a model is built), vagg_bayes.bayes.design,
vagg_bayes.bayes.priors, vagg_bayes.bayes.collapsed (whitening helpers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from vagg_bayes.bayes.collapsed import LOG_2PI, compile_logp_grad, whiten_or_warn
from vagg_bayes.bayes.numeric import numba_jit as _numba_jit
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


def _block_gram(codes: np.ndarray, n_blocks: int, A: np.ndarray) -> np.ndarray:
    """``A_b'A_b`` for every block ``b`` of rows: (n_blocks, A.shape[1], A.shape[1])."""
    out = np.zeros((n_blocks, A.shape[1], A.shape[1]))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_blocks + 1))
    As = A[order]
    for b in range(n_blocks):
        lo, hi = bounds[b], bounds[b + 1]
        if hi > lo:
            out[b] = As[lo:hi].T @ As[lo:hi]
    return out


def _split_gram(G: np.ndarray, k: int):
    """``Y'Y``, ``W'Y`` and ``W'W`` (contiguous) from the Gram matrices of ``[Y, W]``."""
    return (np.ascontiguousarray(G[..., :k, :k]), np.ascontiguousarray(G[..., k:, :k]),
            np.ascontiguousarray(G[..., k:, k:]))


def nested_statistics(design: Design) -> NestedStats:
    """One pass over the rows: every statistic of :class:`NestedStats`."""
    n, k = design.n, design.Z.shape[1] + 1
    if design.group_codes is None:
        gcodes, J = np.zeros(n, dtype=np.int64), 1
    else:
        gcodes, J = design.group_codes, design.n_groups
    T = 0 if design.time_codes is None else int(design.time_codes.max()) + 1
    varying = list(design.varying)
    q = len(varying)
    m = T + q
    # YW = [Y, W]: Y = [y, Z], W = [cell indicators, varying columns]
    YW = np.zeros((n, k + m))
    YW[:, 0] = design.y
    YW[:, 1:k] = design.Z
    if T:
        YW[np.arange(n), k + design.time_codes] = 1.0
    if q:
        YW[:, k + T:] = design.Z[:, varying]
    R, WY, WW = _split_gram(_block_gram(gcodes, J, YW), k)
    n_rows = np.bincount(gcodes, minlength=J).astype(float)
    mode = likelihood_unit_mode(design)
    if mode == "none":
        empty = np.zeros((J, 0))
        return NestedStats(R, np.zeros(0), empty, np.zeros((J, 0, k, k)), WY, WW,
                           np.zeros((J, 0, m, k)), np.zeros((J, 0, m, m)), n_rows, T, q, mode)
    ucodes, F = design.unit_codes, design.n_units
    SW = _block_sums(ucodes, F, YW)  # (F, k + m): unit sums S_f and W_f'1
    size = np.bincount(ucodes, minlength=F)
    unit_group = np.zeros(F, dtype=np.int64)
    unit_group[ucodes] = gcodes
    sizes, size_code = np.unique(size, return_inverse=True)
    C = len(sizes)
    block = unit_group * C + size_code  # (group, size) block of every unit
    units = np.bincount(block, minlength=J * C).reshape(J, C).astype(float)
    Q, P, N = _split_gram(_block_gram(block, J * C, SW).reshape(J, C, k + m, k + m), k)
    return NestedStats(R, sizes.astype(float), units, Q, WY, WW, P, N, n_rows, T, q, mode)


# --------------------------------------------------------------------------- the group kernel


_GROUP_BLOCK = 64  # groups processed at once by the kernel (its work arrays stay in cache)


def _group_terms_py(WY, WW, P, N, e, kc, s2, lval, lrow, lcol):
    """Sum over groups of ``log det M_j`` and ``g_j'M_j^-1 g_j`` with their gradients.

    Compiled by numba (:func:`_group_terms_kernel`). Per group ``j``: ``K = (W'W -
    sum_c kc_c N_c) / s2``, ``h = H e / s2`` with ``H = W'Y - sum_c kc_c P_c``, ``M = I +
    L'KL``, ``g = L'h``, a Cholesky factor ``M = CC'``, ``log det M = 2 sum log C_aa``,
    ``M^-1 = C^-T C^-1``, ``b = M^-1 g``. ``L`` (m x m) has the nonzero entries ``lval``
    at ``(lrow, lcol)`` (the others are structural zeros, skipped); ``K``, ``M`` and
    ``dK`` are symmetric and kept in their lower triangles. The data have the groups
    last (``WY (m, k, J)``, ``WW (m, m, J)``, ``P (C, m, k, J)``, ``N (C, m, m, J)``) and
    every step runs over a block of groups in the innermost loop: the arithmetic of a
    loop over groups, vectorised across them.

    Returns ``(logdet, quad, grad_logdet, grad_quad)``: the sums over groups and their
    gradients with respect to ``(e, kc, s2, lval)``, packed in that order (``k + C + 1 +
    nnz`` entries), from ``d log det M = tr(M^-1 dM)`` and ``d g'M^-1 g = 2 b'dg -
    b'dM b`` with ``dM = dL'KL + L'dK L + L'K dL`` and ``dg = dL'h + L'dh``: for the
    determinant ``dK = L M^-1 L'``, ``dL = 2 K L M^-1``; for the quadratic form ``dK =
    -(Lb)(Lb)'``, ``dh = 2 Lb``, ``dL = 2 (h - KLb) b'``; then ``d kc_c = -(<N_c, dK> +
    <P_c e, dh>) / s2``, ``d e = H'dh / s2`` and ``d s2 = -(<K, dK> + <h, dh>) / s2``.
    When some ``M_j`` is not positive definite (only at extreme trial points: a line
    search, a divergent trajectory), ``logdet = inf``, ``quad = 0`` and zero gradients:
    a density of zero there, which the caller steps back from.
    """
    m, k, J = WY.shape
    C = kc.shape[0]
    nz = lval.shape[0]
    o_kc, o_s2, o_l = k, k + C, k + C + 1
    size = o_l + nz
    B = min(_GROUP_BLOCK, J)
    r2 = 1.0 / s2
    # per-group partial sums, reduced over the groups at the end; the entries for e, kc
    # and s2 without their common factor 1 / s2
    acc_ld = np.zeros((size, B))
    acc_q = np.zeros((size, B))
    logdet_j = np.zeros(B)
    quad_j = np.zeros(B)
    tmp = np.empty(B)
    H = np.empty((m, k, B))
    Pe = np.empty((C, m, B))
    h = np.empty((m, B))
    g = np.empty((m, B))
    b = np.empty((m, B))
    Lb = np.empty((m, B))
    KLb = np.empty((m, B))
    K = np.empty((m, m, B))
    KL = np.empty((m, m, B))
    chol = np.empty((m, m, B))  # M, then its Cholesky factor (lower triangles)
    cinv = np.empty((m, m, B))
    inv = np.empty((m, m, B))
    X = np.empty((m, m, B))
    dK = np.empty((m, m, B))
    for j0 in range(0, J, B):
        nb = min(B, J - j0)
        j1 = j0 + nb
        # H, Pe = P_c e, h = H e / s2 and K (lower triangle)
        for a in range(m):
            ha = h[a]
            ha[:nb] = 0.0
            for c in range(C):
                Pe[c, a, :nb] = 0.0
            for t in range(k):
                Hv, Wv, et = H[a, t], WY[a, t, j0:j1], e[t]
                for i in range(nb):
                    Hv[i] = Wv[i]
                for c in range(C):
                    Pv, Pev, kcc = P[c, a, t, j0:j1], Pe[c, a], kc[c]
                    for i in range(nb):
                        Pev[i] += Pv[i] * et
                        Hv[i] -= kcc * Pv[i]
                for i in range(nb):
                    ha[i] += Hv[i] * et
            for i in range(nb):
                ha[i] *= r2
            for a2 in range(a + 1):
                Kv, Wv = K[a, a2], WW[a, a2, j0:j1]
                for i in range(nb):
                    Kv[i] = Wv[i] * r2
                for c in range(C):
                    Nv, f = N[c, a, a2, j0:j1], kc[c] * r2
                    for i in range(nb):
                        Kv[i] -= f * Nv[i]
        # KL = K L, M = I + L'(KL) (lower triangle), g = L'h
        KL[:, :, :nb] = 0.0
        chol[:, :, :nb] = 0.0
        g[:, :nb] = 0.0
        for z in range(nz):
            r, c, v = lrow[z], lcol[z], lval[z]
            gv, hv = g[c], h[r]
            for i in range(nb):
                gv[i] += v * hv[i]
            for a in range(m):
                Kv = K[a, r] if r <= a else K[r, a]
                KLv = KL[a, c]
                for i in range(nb):
                    KLv[i] += Kv[i] * v
        for z in range(nz):
            r, c, v = lrow[z], lcol[z], lval[z]
            for a in range(c + 1):
                Mv, KLv = chol[c, a], KL[r, a]
                for i in range(nb):
                    Mv[i] += v * KLv[i]
        for a in range(m):
            Mv = chol[a, a]
            for i in range(nb):
                Mv[i] += 1.0
        # Cholesky factor
        for a in range(m):
            for a2 in range(a + 1):
                Cv = chol[a, a2]
                for t in range(a2):
                    x, y = chol[a, t], chol[a2, t]
                    for i in range(nb):
                        Cv[i] -= x[i] * y[i]
                if a == a2:
                    for i in range(nb):
                        if not Cv[i] > 0.0:  # not positive definite (or NaN)
                            return np.inf, 0.0, np.zeros(size), np.zeros(size)
                    for i in range(nb):
                        Cv[i] = np.sqrt(Cv[i])
                        logdet_j[i] += 2.0 * np.log(Cv[i])
                else:
                    d = chol[a2, a2]
                    for i in range(nb):
                        Cv[i] /= d[i]
        # C^-1 by forward substitution, M^-1 = C^-T C^-1, b = M^-1 g
        for a in range(m):
            Dv, d = cinv[a, a], chol[a, a]
            for i in range(nb):
                Dv[i] = 1.0 / d[i]
            for a2 in range(a):
                tmp[:nb] = 0.0
                for t in range(a2, a):
                    x, y = chol[a, t], cinv[t, a2]
                    for i in range(nb):
                        tmp[i] += x[i] * y[i]
                Cv = cinv[a, a2]
                for i in range(nb):
                    Cv[i] = -tmp[i] * Dv[i]
        for a in range(m):
            for a2 in range(a + 1):
                Iv = inv[a, a2]
                Iv[:nb] = 0.0
                for t in range(a, m):
                    x, y = cinv[t, a], cinv[t, a2]
                    for i in range(nb):
                        Iv[i] += x[i] * y[i]
                inv[a2, a, :nb] = Iv[:nb]
        for a in range(m):
            bv = b[a]
            bv[:nb] = 0.0
            for a2 in range(m):
                Iv, gv = inv[a, a2], g[a2]
                for i in range(nb):
                    bv[i] += Iv[i] * gv[i]
            gv = g[a]
            for i in range(nb):
                quad_j[i] += gv[i] * bv[i]
        # log det: dK = L M^-1 L' (lower triangle), dL = 2 K L M^-1
        X[:, :, :nb] = 0.0
        dK[:, :, :nb] = 0.0
        for z in range(nz):
            r, c, v = lrow[z], lcol[z], lval[z]
            for a in range(m):
                Xv, Iv = X[r, a], inv[c, a]
                for i in range(nb):
                    Xv[i] += v * Iv[i]
        for z in range(nz):
            r, c, v = lrow[z], lcol[z], lval[z]
            for a in range(r, m):
                dv, Xv = dK[a, r], X[a, c]
                for i in range(nb):
                    dv[i] += v * Xv[i]
        g_s2 = acc_ld[o_s2]
        for a in range(m):
            for a2 in range(a + 1):
                w = 1.0 if a2 == a else 2.0  # both off-diagonal triangles
                dv, Kv = dK[a, a2], K[a, a2]
                for i in range(nb):
                    g_s2[i] -= w * Kv[i] * dv[i]
                for c in range(C):
                    g_kc, Nv = acc_ld[o_kc + c], N[c, a, a2, j0:j1]
                    for i in range(nb):
                        g_kc[i] -= w * Nv[i] * dv[i]
        for z in range(nz):
            r, c = lrow[z], lcol[z]
            g_l = acc_ld[o_l + z]
            for a in range(m):
                KLv, Iv = KL[r, a], inv[a, c]
                for i in range(nb):
                    g_l[i] += 2.0 * KLv[i] * Iv[i]
        # quadratic form: dK = -(Lb)(Lb)', dh = 2 Lb, dL = 2 (h - KLb) b' (KLb = K Lb)
        Lb[:, :nb] = 0.0
        for z in range(nz):
            r, c, v = lrow[z], lcol[z], lval[z]
            Lv, bv = Lb[r], b[c]
            for i in range(nb):
                Lv[i] += v * bv[i]
        g_s2 = acc_q[o_s2]
        for a in range(m):
            Kbv, Lv, hv = KLb[a], Lb[a], h[a]
            Kbv[:nb] = 0.0
            for a2 in range(m):
                KLv, bv = KL[a, a2], b[a2]
                for i in range(nb):
                    Kbv[i] += KLv[i] * bv[i]
            for i in range(nb):
                g_s2[i] += Lv[i] * (Kbv[i] - 2.0 * hv[i])
            for c in range(C):
                g_kc, Pev = acc_q[o_kc + c], Pe[c, a]
                for i in range(nb):
                    g_kc[i] -= 2.0 * Pev[i] * Lv[i]
                for a2 in range(a + 1):
                    w = 1.0 if a2 == a else 2.0
                    Nv, L2 = N[c, a, a2, j0:j1], Lb[a2]
                    for i in range(nb):
                        g_kc[i] += w * Lv[i] * Nv[i] * L2[i]
            for t in range(k):
                g_e, Hv = acc_q[t], H[a, t]
                for i in range(nb):
                    g_e[i] += 2.0 * Hv[i] * Lv[i]
        for z in range(nz):
            r, c = lrow[z], lcol[z]
            g_l, hv, Kbv, bv = acc_q[o_l + z], h[r], KLb[r], b[c]
            for i in range(nb):
                g_l[i] += 2.0 * (hv[i] - Kbv[i]) * bv[i]
    grad_ld = np.zeros(size)
    grad_q = np.zeros(size)
    for s in range(size):
        for i in range(B):
            grad_ld[s] += acc_ld[s, i]
            grad_q[s] += acc_q[s, i]
    grad_ld[:o_l] *= r2
    grad_q[:o_l] *= r2
    logdet = 0.0
    quad = 0.0
    for i in range(B):
        logdet += logdet_j[i]
        quad += quad_j[i]
    return logdet, quad, grad_ld, grad_q


@functools.cache
def _group_terms_kernel():
    """:func:`_group_terms_py`, compiled (on first call; about 10 s without a cache)."""
    return _numba_jit(_group_terms_py)


@functools.cache
def _group_terms_op():
    """Op of :func:`_group_terms_py`, with its gradient.

    ``(W'Y, W'W, P, N, e, kc, s2, lval, lrow, lcol) -> (sum log det M_j, sum
    g_j'M_j^-1 g_j, gradient of the first, gradient of the second)``.
    """
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    kernel = _group_terms_kernel()

    class GroupTerms(Op):
        """Both sums over groups, and their gradients (packed, not differentiable).

        Only ``e``, ``kc``, ``s2`` and ``lval`` are differentiable inputs.
        """

        __props__ = ()

        def make_node(self, WY, WW, P, N, e, kc, s2, lval, lrow, lcol):
            inputs = [pt.as_tensor_variable(x) for x in (WY, WW, P, N, e, kc, s2, lval,
                                                          lrow, lcol)]
            if any(x.type.dtype != "int64" for x in inputs[8:]):
                raise TypeError("lrow and lcol must be int64")
            outs = [pt.dscalar(), pt.dscalar(), pt.dvector(), pt.dvector()]
            return Apply(self, inputs, outs)

        def perform(self, node, inputs, outputs):
            *arrays, s2, lval, lrow, lcol = inputs
            logdet, quad, g_ld, g_q = kernel(*arrays, float(s2), lval, lrow, lcol)
            outputs[0][0] = np.asarray(logdet)
            outputs[1][0] = np.asarray(quad)
            outputs[2][0] = g_ld
            outputs[3][0] = g_q

        def grad(self, inputs, output_grads):
            e, kc, s2, lval = inputs[4:8]
            _, _, g_ld, g_q = self(*inputs)
            total = pt.zeros_like(g_ld)
            if not isinstance(output_grads[0].type, DisconnectedType):
                total = total + output_grads[0] * g_ld
            if not isinstance(output_grads[1].type, DisconnectedType):
                total = total + output_grads[1] * g_q
            k, C = e.shape[0], kc.shape[0]
            parts = [total[:k], total[k:k + C], total[k + C], total[k + C + 1:]]
            grads = [x.type.filter_variable(part, allow_convert=True)
                     for x, part in zip((e, kc, s2, lval), parts, strict=True)]
            none = [DisconnectedType()() for _ in range(4)]
            return [*none, *grads, DisconnectedType()(), DisconnectedType()()]

        def connection_pattern(self, node):
            data, param = [False] * 4, [True, True, False, False]
            return [data] * 4 + [param] * 4 + [data] * 2

    return GroupTerms()


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
    """Statistics the sampled density reads (pooled where the density allows).

    The per-group arrays have the groups last, as :func:`_group_terms_py` reads them.
    """

    def groups_last(x):
        return np.ascontiguousarray(np.moveaxis(x, 0, -1))

    return {
        "R": stats.R.sum(axis=0),
        "Q": stats.Q.sum(axis=0),
        "F": stats.units.sum(axis=0),
        "sizes": stats.sizes,
        "WY": groups_last(stats.WY),
        "WW": groups_last(stats.WW),
        "P": groups_last(stats.P),
        "N": groups_last(stats.N),
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
        lval, lrow, lcol = _g_factor_entries(out, T, q)
        kc_in = pt.zeros(0) if kc is None else kc
        logdet_M, quad_M = _group_terms_op()(a["WY"], a["WW"], a["P"], a["N"], e, kc_in, s2,
                                             lval, lrow, lcol)[:2]
        logdet_V = logdet_V + logdet_M
        quad_V = quad_V - quad_M
    loglik = -0.5 * (a["n"] * LOG_2PI + logdet_V + quad_V)
    return lp + loglik, out


def _factor_pattern(T: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the entries of ``L`` that may be nonzero.

    ``sd_cell I_T``, then the lower triangle of the ``q x q`` Cholesky factor of ``S``, by
    rows.
    """
    rows = list(range(T)) + [T + a for a in range(q) for _ in range(a + 1)]
    cols = list(range(T)) + [T + b for a in range(q) for b in range(a + 1)]
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def _g_factor_entries(par: dict, T: int, q: int):
    """Entries of ``L`` at :func:`_factor_pattern`: values (PyTensor), rows, columns."""
    import pytensor.tensor as pt

    values = []
    if T:
        values.append(par["sd_cell"] * pt.ones(T))
    if q:
        values.append(par["tau"][:1])
    if q == 2:
        tau, corr = par["tau"], par["corr"]
        values += [(tau[1] * corr)[None], (tau[1] * pt.sqrt(1 - corr**2))[None]]
    return (pt.concatenate(values), *_factor_pattern(T, q))


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
    """Per draw and group: ``r'A^-1 r``, ``log det A``, ``g``; per draw ``L`` and ``k(c)``.

    ``M`` is left to :func:`_draw_terms_py` (``K`` from ``k(c)`` and ``s^2``).
    """
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
            kc = np.tile(1.0 / stats.sizes, (D, 1))
            per_unit = (stats.sizes[None] - 1.0) * np.log(s2)[:, None]
        logdet_A = per_unit @ stats.units.T  # (D, J)
        rAr = (eRe - np.einsum("dc,djc->dj", kc, eQe)) / s2[:, None]
    if not stats.m:
        return rAr, logdet_A, None, None, None
    m, k = stats.m, e.shape[1]
    # matrix products (BLAS) rather than einsum over the draws
    WYe = (e @ stats.WY.reshape(J * m, k).T).reshape(D, J, m)
    if kc is None:
        kc = np.zeros((D, 0))
    else:
        C = len(stats.sizes)
        Pe = (e @ stats.P.reshape(J * C * m, k).T).reshape(D, J, C, m)
        WYe = WYe - np.einsum("dc,djca->dja", kc, Pe)
    h = WYe / s2[:, None, None]
    L = _cholesky_np(draws, stats.n_cells, stats.q)
    g = h @ L  # rows: L'h
    return rAr, logdet_A, g, L, kc


def _draw_terms_py(WW, N, kc, s2, lval, lrow, lcol, g, eps):
    """Per draw and group: ``log det M``, ``g'M^-1 g`` and ``z = M^-1 g + C^-T eps``.

    Compiled by numba. For draw ``d`` and group ``j``: ``K = (W'W - sum_c kc_dc N_c) /
    s2_d``, ``M = I + L_d'K L_d`` (``L_d`` with the entries ``lval[d]`` at ``(lrow,
    lcol)``, lower triangles), a Cholesky factor ``M = CC'``. Returns ``(ok, logdet,
    quad, z)``; ``ok`` is False when some ``M`` is not positive definite (the other
    outputs are then incomplete).
    """
    D, J, m = g.shape
    C = kc.shape[1]
    nz = lval.shape[1]
    logdet = np.zeros((D, J))
    quad = np.zeros((D, J))
    z = np.zeros((D, J, m))
    K = np.zeros((m, m))
    KL = np.zeros((m, m))
    chol = np.zeros((m, m))  # M, then its Cholesky factor (lower triangles)
    y = np.zeros(m)
    for d in range(D):
        for j in range(J):
            for a in range(m):
                for a2 in range(a + 1):
                    acc = WW[j, a, a2]
                    for c in range(C):
                        acc -= kc[d, c] * N[j, c, a, a2]
                    K[a, a2] = acc / s2[d]
            KL[:, :] = 0.0
            chol[:, :] = 0.0
            for w in range(nz):
                r, c, v = lrow[w], lcol[w], lval[d, w]
                for a in range(m):
                    KL[a, c] += (K[a, r] if r <= a else K[r, a]) * v
            for w in range(nz):
                r, c, v = lrow[w], lcol[w], lval[d, w]
                for a in range(c + 1):
                    chol[c, a] += v * KL[r, a]
            for a in range(m):
                chol[a, a] += 1.0
            for a in range(m):
                for a2 in range(a + 1):
                    acc = chol[a, a2]
                    for t in range(a2):
                        acc -= chol[a, t] * chol[a2, t]
                    if a == a2:
                        if not acc > 0.0:
                            return False, logdet, quad, z
                        chol[a, a] = np.sqrt(acc)
                        logdet[d, j] += 2.0 * np.log(chol[a, a])
                    else:
                        chol[a, a2] = acc / chol[a2, a2]
            # y = C^-1 g, so g'M^-1 g = y'y and M^-1 g = C^-T y
            for a in range(m):
                acc = g[d, j, a]
                for t in range(a):
                    acc -= chol[a, t] * y[t]
                y[a] = acc / chol[a, a]
                quad[d, j] += y[a] * y[a]
            for a in range(m - 1, -1, -1):
                acc = y[a] + eps[d, j, a]
                for t in range(a + 1, m):
                    acc -= chol[t, a] * z[d, j, t]
                z[d, j, a] = acc / chol[a, a]
    return True, logdet, quad, z


@functools.cache
def _draw_terms_kernel():
    """:func:`_draw_terms_py`, compiled (on the first call)."""
    return _numba_jit(_draw_terms_py)


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
        rAr, logdet_A, g, L, kc = _group_parts(stats, draws.take(sl))
        quad = rAr
        logdet = logdet_A
        if g is not None:
            # z = M^-1 g + C^-T eps has covariance M^-1; the effects are L z
            eps = rng.standard_normal(g.shape)
            rows, cols = _factor_pattern(T, q)
            ok, logdet_M, quad_M, z = _draw_terms_kernel()(
                stats.WW, stats.N, kc, np.asarray(draws.sigma[sl], dtype=float) ** 2,
                np.ascontiguousarray(L[:, rows, cols]), rows, cols, g, eps)
            if not ok:
                raise np.linalg.LinAlgError("Matrix is not positive definite")
            logdet = logdet + logdet_M
            quad = quad - quad_M
            effects = np.einsum("dab,djb->dja", L, z)
            if T:
                cells[sl] = effects[..., :T]
            if q:
                groups[sl] = effects[..., T:]
        loglik[sl] = -0.5 * (stats.n_rows[None] * LOG_2PI + logdet + quad)
    return cells, groups, loglik
