"""Pointwise log-likelihoods on the data scale: per group (marginal) and per row.

Two units of prediction (MATH.md section 5):

* per row, conditional on the group effects of each draw:
  :func:`bernoulli_row_loglik`, :func:`gaussian_row_loglik`;
* per group, with the group effects integrated out,
  ``log p(y_j | beta, S) = log ∫ prod_i p(y_ij | beta, u) N(u; 0, S) du``:
  :func:`bernoulli_group_loglik`, by adaptive Gauss–Hermite quadrature (or Laplace).

For the quadrature the effects are written ``u = L v`` with ``L L' = S`` and
``v ~ N(0, I)``, so that ``N(u; 0, S) du = N(v; 0, I) dv``: the integrand's log,
``g(v) = l(v) - |v|^2 / 2``, stays well conditioned however small a group SD is (with
``S = 0`` it is ``l(0) - |v|^2 / 2`` and the rule returns ``l(0)`` exactly), and a
singular ``S`` (correlation of +-1) needs no inverse. ``g`` is concave; its mode
``v_hat`` is found by damped Newton steps, vectorised over draws and groups, and with
``H = -g''(v_hat) = I + L' W' diag(p (1 - p)) W L`` and ``R = chol(H)^-T``
(``R R' = H^-1``)::

    p(y_j) ~= |R| sum_k omega_k exp(g(v_hat + R z_k) + |z_k|^2 / 2)

with tensor-product Gauss–Hermite nodes ``z_k`` and weights ``omega_k`` for the
standard normal. One node (``z = 0``, ``omega = 1``) is the Laplace approximation
``g(v_hat) - log det(H) / 2``.

Rows are sorted by group, so a group's value reaches its rows by ``repeat`` and a sum
over a group's rows is a segment sum (``add.reduceat``). At a node the log-likelihood
is ``sum_i y_i eta_i - sum_i softplus(eta_i)``: the first sum is linear in the node and
comes from per-group sums; the second is the costly part, one term per row, node and
draw (``n * nodes**q * D``), computed as the log of products over short blocks of rows
with two exponentials per row and ``nodes`` (see :func:`_node_sums`).

Accuracy: against brute-force quadrature, 15 nodes per dimension give about 1e-7 (q = 1)
and 1e-8 (q = 2) on groups of 1 to 60 rows with group SDs up to 1.5 on the logit
scale; the Laplace approximation is off by up to about 0.03 on such groups. The
integrand is far from Gaussian, and the rule converges slowly, when a group has few
rows (or all-equal outcomes) and ``|w' u|`` has an SD of several logits (errors of
about 1e-3 at SD 5 and 2e-2 to 4e-2 at SD 10-20 with 15 nodes); more nodes help there.

May import: numpy, scipy, vagg_bayes.bayes.design.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import logsumexp

from vagg_bayes.bayes.design import Design

_CHUNK_CELLS = 1 << 20  # rows x draws per chunk of the row log-likelihoods
_NEWTON_CELLS = 1 << 17  # rows x draws per chunk of the mode search
_NODE_CELLS = 1 << 19  # rows x draws (x nodes for q = 2) per chunk of node evaluations
_NEWTON_MAX_ITER = 100
_NEWTON_TOL = 1e-14  # Newton decrement g' H^-1 g (about twice the gap to the maximum)
_MAX_HALVINGS = 40
_SAFE_EXPONENT = 700.0  # exp of +-700 is finite and normal


# --------------------------------------------------------------------------- helpers


def _flat(a, trailing: int, name: str) -> np.ndarray:
    """``a`` with its leading (chain, draw) axes flattened to one draw axis."""
    a = np.asarray(a, dtype=float)
    if a.ndim < trailing + 1:
        raise ValueError(f"{name} needs a draw axis and {trailing} more; got shape {a.shape}")
    return a.reshape((-1,) + a.shape[a.ndim - trailing:])


def _softplus(eta: np.ndarray) -> np.ndarray:
    """``log(1 + exp(eta))`` for any ``eta`` (a new array)."""
    e = np.abs(eta)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=e)
    e += np.maximum(eta, 0.0)
    return e


def _softplus_sigmoid(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log(1 + exp(eta))`` and ``1 / (1 + exp(-eta))`` for any ``eta``."""
    sp = _softplus(eta)
    p = np.subtract(eta, sp)
    np.exp(p, out=p)
    return sp, p


def _eta(design: Design, beta: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    """``X beta + sum_a u[group, a] X[:, varying[a]]`` (D, n) from (D, p) and (D, J, q)."""
    eta = beta @ design.X.T
    if u is not None:
        codes = design.group_codes
        for a, col in enumerate(design.varying):
            g = np.take(np.ascontiguousarray(u[..., a]), codes, axis=1)
            x = design.X[:, col]
            if not np.all(x == 1.0):
                g *= x
            eta += g
    return eta


def _row_inputs(design: Design, beta, group_effects) -> tuple[np.ndarray, np.ndarray | None]:
    """Flattened and checked ``beta`` (D, p) and group effects (D, J, q) or None."""
    beta = _flat(beta, 1, "beta")
    if beta.shape[1] != design.p:
        raise ValueError(f"beta has {beta.shape[1]} columns; the design has {design.p}")
    if group_effects is None:
        return beta, None
    if design.group_codes is None:
        raise ValueError("group_effects given but the design has no group")
    u = _flat(group_effects, 2, "group_effects")
    if u.shape[1:] != (design.n_groups, len(design.varying)) or u.shape[0] != beta.shape[0]:
        raise ValueError(
            f"group_effects has shape {u.shape} (flattened); expected "
            f"({beta.shape[0]}, {design.n_groups}, {len(design.varying)})"
        )
    return beta, u


def _chunks(n_draws: int, cells_per_draw: int, cells: int = _CHUNK_CELLS):
    """Slices of draws with about ``cells`` cells each (at least one draw)."""
    size = max(1, cells // max(1, cells_per_draw))
    for start in range(0, n_draws, size):
        yield slice(start, min(start + size, n_draws))


# --------------------------------------------------------------------------- per row


def bernoulli_row_loglik(design: Design, beta, group_effects=None) -> np.ndarray:
    """Per-row Bernoulli (logit) log-likelihood, conditional on the group effects.

    Parameters
    ----------
    design : Design
    beta : ndarray (..., p)
        Data-scale coefficients; leading axes (e.g. chain, draw) are flattened.
    group_effects : ndarray (..., J, q), optional
        Data-scale group deviations for the columns ``design.varying``, with the same
        leading axes as ``beta``. Without them the predictor is ``X beta``.

    Returns
    -------
    ndarray (D, n)
        ``y eta - log(1 + exp(eta))`` per flattened draw and row (rows in data order).
    """
    beta, u = _row_inputs(design, beta, group_effects)
    y = design.y
    out = np.empty((beta.shape[0], design.n))
    for sl in _chunks(beta.shape[0], design.n):
        eta = _eta(design, beta[sl], None if u is None else u[sl])
        sp = _softplus(eta)
        eta *= y
        np.subtract(eta, sp, out=out[sl])
    return out


def gaussian_row_loglik(design: Design, beta, sigma, group_effects=None) -> np.ndarray:
    """Per-row Normal log density, conditional on the group effects.

    Parameters
    ----------
    design : Design
    beta : ndarray (..., p)
        Data-scale coefficients; leading axes are flattened.
    sigma : ndarray (...)
        Residual SD per draw, same leading axes as ``beta``.
    group_effects : ndarray (..., J, q), optional
        Data-scale group deviations for the columns ``design.varying``.

    Returns
    -------
    ndarray (D, n)
        ``log N(y_i; eta_i, sigma^2)`` per flattened draw and row.
    """
    beta, u = _row_inputs(design, beta, group_effects)
    sigma = np.asarray(sigma, dtype=float).reshape(-1)
    if sigma.shape[0] != beta.shape[0]:
        raise ValueError(f"sigma has {sigma.shape[0]} draws; beta has {beta.shape[0]}")
    if not np.all((sigma > 0) & np.isfinite(sigma)):
        raise ValueError("sigma must be positive and finite")
    y = design.y
    out = np.empty((beta.shape[0], design.n))
    for sl in _chunks(beta.shape[0], design.n):
        s = sigma[sl, None]
        r = _eta(design, beta[sl], None if u is None else u[sl])
        np.subtract(y, r, out=r)
        r /= s
        r *= r
        r += np.log(2.0 * np.pi * s * s)
        np.multiply(r, -0.5, out=out[sl])
    return out


# --------------------------------------------------------------------------- per group


class _SortedRows:
    """Rows sorted by group (groups without rows left out), for segment sums."""

    def __init__(self, design: Design):
        codes = design.group_codes
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=design.n_groups)
        self.present = counts > 0
        self.counts = counts[self.present]
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.n = int(codes.shape[0])
        self.X = np.ascontiguousarray(design.X[order])
        self.y = np.ascontiguousarray(design.y[order])
        W = self.X[:, list(design.varying)]
        self.q = q = W.shape[1]
        # a column (or product of columns) that is all ones is stored as None and skipped
        self.w = [None if np.all(W[:, a] == 1.0) else np.ascontiguousarray(W[:, a])
                  for a in range(q)]
        self.pairs = [(a, b) for a in range(q) for b in range(a, q)]
        self.ww = [None if np.all(W[:, a] * W[:, b] == 1.0) else W[:, a] * W[:, b]
                   for a, b in self.pairs]
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.Yw = self.segsum(np.ascontiguousarray((self.y[:, None] * W).T)).T  # (J, q)

    @property
    def J(self) -> int:
        """Number of groups with rows."""
        return int(self.counts.shape[0])

    def segsum(self, a: np.ndarray) -> np.ndarray:
        """Sum over each group's rows along the last axis: (..., n) -> (..., J)."""
        return np.add.reduceat(a, self.starts, axis=-1)

    def blocks(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Blocks of rows within groups: where they start, and where each group starts.

        A block has at most ``size`` rows, rounded down to a power of two (at most 256).
        """
        size = int(min(max(size, 1), 256))
        size = 1 << (size.bit_length() - 1)
        if size not in self._blocks:
            per = -(-self.counts // size)  # blocks per group
            first = np.repeat(np.cumsum(per) - per, per)
            offset = (np.arange(int(per.sum())) - first) * size
            self._blocks[size] = (np.repeat(self.starts, per) + offset,
                                  np.concatenate([[0], np.cumsum(per)[:-1]]))
        return self._blocks[size]

    def combine(self, c: np.ndarray) -> np.ndarray:
        """(D, J, q) -> (D, n): ``sum_a c[group, a] w_a`` on every row."""
        out = None
        for a, w in enumerate(self.w):
            t = np.repeat(c[..., a], self.counts, axis=-1)
            if w is not None:
                t *= w
            if out is None:
                out = t
            else:
                out += t
        return out


def _cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of positive definite (..., q, q) blocks, q <= 2."""
    L = np.zeros_like(A)
    L[..., 0, 0] = np.sqrt(A[..., 0, 0])
    if A.shape[-1] == 2:
        L[..., 1, 0] = A[..., 1, 0] / L[..., 0, 0]
        L[..., 1, 1] = np.sqrt(A[..., 1, 1] - L[..., 1, 0] ** 2)
    return L


def _solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``H^-1 g`` for symmetric positive definite (..., q, q) blocks, q <= 2."""
    if H.shape[-1] == 1:
        return g / H[..., 0]
    h00, h01, h11 = H[..., 0, 0], H[..., 0, 1], H[..., 1, 1]
    det = h00 * h11 - h01 * h01
    s = np.empty_like(g)
    s[..., 0] = (h11 * g[..., 0] - h01 * g[..., 1]) / det
    s[..., 1] = (h00 * g[..., 1] - h01 * g[..., 0]) / det
    return s


def _prior_factor(sd: np.ndarray, corr: np.ndarray | None) -> np.ndarray:
    """``L`` (D, q, q), lower, with ``L L' = S`` (valid for SD 0 and correlation +-1)."""
    D, q = sd.shape
    L = np.zeros((D, q, q))
    L[:, 0, 0] = sd[:, 0]
    if q == 2:
        r = np.zeros(D) if corr is None else np.clip(corr, -1.0, 1.0)
        L[:, 1, 0] = sd[:, 1] * r
        L[:, 1, 1] = sd[:, 1] * np.sqrt(np.maximum(1.0 - r * r, 0.0))
    return L


class _State:
    """Log integrand, gradient and curvature at ``v`` (D, J, q), per draw and group.

    ``f = l(v) - |v|^2 / 2`` (``l`` the group's log-likelihood at ``u = L v``), its
    gradient ``g`` and ``H`` = minus its Hessian.
    """

    __slots__ = ("v", "u", "eta", "ll", "f", "g", "H")

    def __init__(self, rows: _SortedRows, O, YO, L, v):
        D, q, n = O.shape[0], rows.q, rows.n
        self.v = v
        self.u = u = (L[:, None] @ v[..., None])[..., 0]
        self.eta = eta = rows.combine(u)
        eta += O
        # rows of S: softplus, then (y - p) w_a, then p (1 - p) w_a w_b; one segment sum
        S = np.empty((D, 1 + q + len(rows.pairs), n))
        if float(eta.max(initial=0.0)) < _SAFE_EXPONENT:
            e = np.exp(eta)
            np.log1p(e, out=S[:, 0])
            d1 = e + 1.0
            p = np.divide(e, d1, out=e)
            lam = np.divide(p, d1, out=d1)
        else:
            sp, p = _softplus_sigmoid(eta)
            S[:, 0] = sp
            lam = p * (1.0 - p)
        r = np.subtract(rows.y, p, out=p)
        for a, w in enumerate(rows.w):
            if w is None:
                S[:, 1 + a] = r
            else:
                np.multiply(r, w, out=S[:, 1 + a])
        for k, w in enumerate(rows.ww, start=1 + q):
            if w is None:
                S[:, k] = lam
            else:
                np.multiply(lam, w, out=S[:, k])
        sums = rows.segsum(S)  # (D, k, J)
        self.ll = YO + (u * rows.Yw).sum(-1) - sums[:, 0]
        self.f = self.ll - 0.5 * (v * v).sum(-1)
        gu = np.moveaxis(sums[:, 1:1 + q], 1, -1)
        Lt = np.swapaxes(L, -1, -2)[:, None]
        self.g = (Lt @ gu[..., None])[..., 0] - v
        A = np.empty(v.shape + (q,))
        for k, (a, b) in enumerate(rows.pairs, start=1 + q):
            A[..., a, b] = A[..., b, a] = sums[:, k]
        self.H = Lt @ A @ L[:, None]
        self.H += np.eye(q)

    def take(self, other: _State, mask: np.ndarray) -> None:
        """Replace the (draw, group) entries where ``mask`` by those of ``other``."""
        for name in ("v", "u", "ll", "f", "g", "H"):
            getattr(self, name)[mask] = getattr(other, name)[mask]
        self.eta = None  # stale: recomputed by _mode


def _mode(rows: _SortedRows, O, YO, L, v0) -> _State:
    """Maximise ``f(v)`` per (draw, group) from ``v0`` by Newton steps with halving."""
    D, J, q = O.shape[0], rows.J, rows.q
    st = _State(rows, O, YO, L, np.broadcast_to(v0, (D, J, q)).copy())
    done = np.zeros((D, J), dtype=bool)  # no ascent left at machine precision
    for _ in range(_NEWTON_MAX_ITER):
        step = _solve(st.H, st.g)
        dec = (st.g * step).sum(-1)
        pending = (dec > _NEWTON_TOL) & ~done
        if not pending.any():
            break
        t = np.ones((D, J))
        for _ in range(_MAX_HALVINGS):
            v_try = np.where(pending[..., None], st.v + t[..., None] * step, st.v)
            trial = _State(rows, O, YO, L, v_try)
            # Armijo ascent, up to rounding in f
            need = st.f + 1e-4 * t * dec - 1e-12 * (1.0 + np.abs(st.f))
            ok = pending & (trial.f >= need)
            if np.array_equal(ok, pending):
                st = trial  # entries not pending were evaluated at their own v
                break
            st.take(trial, ok)
            pending &= ~ok
            t[pending] *= 0.5
        else:
            done |= pending
    if st.eta is None:
        st = _State(rows, O, YO, L, st.v)
    return st


def _hermite(nodes: int, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes for N(0, 1): 1-D nodes, tensor log-weights and grid.

    Returns ``z`` (nodes,), log-weights (K,) and the grid (K, q) with node
    ``k = k_0 * nodes + k_1``.
    """
    x, w = np.polynomial.hermite.hermgauss(nodes)
    z = np.sqrt(2.0) * x
    logw = np.log(w) - 0.5 * np.log(np.pi)  # weights for exp(-x^2) -> for N(0, 1)
    grid = np.stack(np.meshgrid(*([z] * q), indexing="ij"), -1).reshape(-1, q)
    logw_grid = np.sum(np.meshgrid(*([logw] * q), indexing="ij"), axis=0).reshape(-1)
    return z, logw_grid, grid


def _node_sums(rows: _SortedRows, eta_hat: np.ndarray, m: list[np.ndarray],
               z: np.ndarray) -> np.ndarray:
    """``sum_i softplus(eta_hat_i + sum_c z_{k_c} m_c,i)`` over each group's rows.

    ``eta_hat`` and the ``q`` arrays ``m`` are (D, n); returns (D, J, len(z)**q).

    With ``A = eta_hat + z_a m_0`` and ``B = z_b m_1`` (0 for q = 1),
    ``softplus(A + B) = A + log(exp(-A) + exp(B))``: two exponentials per row and
    ``nodes``, then per node one addition and one multiplication, as the log of the
    product over blocks of rows short enough for the product to stay within e^+-700.
    Where some ``|eta|`` nears the range of ``exp`` the plain, stable softplus is used.
    """
    D, q, nz = eta_hat.shape[0], len(m), len(z)
    spread = float(np.abs(z).max()) * sum(float(np.abs(mc).max()) for mc in m)
    bound = float(np.abs(eta_hat).max()) + spread + np.log(2.0)
    fast = bound < _SAFE_EXPONENT
    if fast:
        # |log of a factor| <= |eta| + log 2: a block's product stays within e^+-700
        starts, block_starts = rows.blocks(int(_SAFE_EXPONENT // bound))
    out = np.empty((D, rows.J, nz**q))
    for sl in _chunks(D, rows.n * (nz if q == 2 else 1), _NODE_CELLS):
        eh, m0 = eta_hat[sl], m[0][sl]
        if q == 2:
            G = z[:, None] * m[1][sl][:, None, :]  # (d, nz, n)
            if fast:
                np.exp(G, out=G)
            buf = np.empty_like(G)
        for a in range(nz):
            A = m0 * z[a]
            A += eh
            if not fast:
                if q == 2:
                    A = np.add(A[:, None, :], G, out=buf)
                sums = rows.segsum(_softplus(A))
            else:
                # 1 + exp(A + B) = exp(A) (exp(-A) + exp(B)), as a product over each block
                F = np.negative(A)
                np.exp(F, out=F)
                if q == 2:
                    F = np.add(F[:, None, :], G, out=buf)
                else:
                    F += 1.0
                prod = np.multiply.reduceat(F, starts, axis=-1)
                np.log(prod, out=prod)
                sums = np.add.reduceat(prod, block_starts, axis=-1)
                if q == 2:
                    sums += rows.segsum(A)[:, None, :]
                else:
                    sums += rows.segsum(A)
            if q == 1:
                out[sl, :, a] = sums
            else:
                out[sl, :, a * nz:(a + 1) * nz] = np.swapaxes(sums, 1, 2)
    return out


def bernoulli_group_loglik(design: Design, beta, group_sd, group_corr=None, *,
                           nodes: int = 15, laplace: bool = False, draws=None,
                           workers: int = 1) -> np.ndarray:
    """Per-group marginal log-likelihood of a grouped Bernoulli (logit) model.

    For every draw and group ``j``::

        log ∫ prod_i Bernoulli(y_ij | logit^-1(x_ij' beta + w_ij' u)) N(u; 0, S) du

    with ``w_ij = X[i, varying]`` and ``S`` built from ``group_sd`` and
    ``group_corr``, all on the data scale, by adaptive Gauss–Hermite quadrature
    (a tensor product of ``nodes`` per dimension, centred at the integrand's mode and
    scaled by its curvature) or, with ``laplace=True``, the Laplace approximation
    ``log f(u_hat) + (q/2) log 2 pi - log det(H) / 2`` (one node).

    Parameters
    ----------
    design : Design
        A design with a group and ``q = len(design.varying)`` of 1 or 2; ``y`` in {0, 1}.
    beta : ndarray (..., p)
        Data-scale coefficients; leading (chain, draw) axes are flattened.
    group_sd : ndarray (..., q)
        SDs of the group effects, same leading axes. Zero is allowed (the integral is
        then the likelihood at ``u = 0``).
    group_corr : ndarray (...), optional
        Correlation of the two group effects (q = 2); default 0. +-1 is allowed.
    nodes : int, default 15
        Gauss–Hermite nodes per dimension (``nodes**q`` evaluations per group and draw).
    laplace : bool, default False
        Use the Laplace approximation (the same as ``nodes=1``), the fastest.
    draws : slice or array of int, optional
        Select flattened draws; default all.
    workers : int, default 1
        Threads, each taking a contiguous share of the draws (NumPy releases the GIL
        in its element-wise loops, which do most of the work).

    Returns
    -------
    ndarray (D, J)
        Log-likelihood per selected draw and group (0 for a group without rows).
    """
    if design.group_codes is None:
        raise ValueError("bernoulli_group_loglik needs a design with a group")
    q = len(design.varying)
    if q not in (1, 2):
        raise ValueError(f"only 1 or 2 group-varying columns are supported; got {q}")
    if not np.all((design.y == 0) | (design.y == 1)):
        raise ValueError("a Bernoulli response must be 0 or 1")
    if int(nodes) < 1:
        raise ValueError(f"nodes must be at least 1; got {nodes}")
    beta = _flat(beta, 1, "beta")
    sd = _flat(group_sd, 1, "group_sd")
    if beta.shape[1] != design.p or sd.shape[1] != q or sd.shape[0] != beta.shape[0]:
        raise ValueError(
            f"beta {beta.shape} and group_sd {sd.shape} (flattened) do not match a design "
            f"with p = {design.p} and q = {q}"
        )
    corr = None
    if group_corr is not None and q == 2:
        corr = np.asarray(group_corr, dtype=float).reshape(-1)
        if corr.shape[0] != beta.shape[0]:
            raise ValueError(f"group_corr has {corr.shape[0]} draws; beta has {beta.shape[0]}")
    if draws is not None:
        beta, sd = beta[draws], sd[draws]
        corr = None if corr is None else corr[draws]
    if not np.all(np.isfinite(beta)):
        raise ValueError("beta must be finite")
    if np.any(sd < 0) or not np.all(np.isfinite(sd)):
        raise ValueError("group_sd must be finite and non-negative")
    nodes = 1 if laplace else int(nodes)

    rows = _SortedRows(design)
    n_draws = beta.shape[0]
    out = np.zeros((n_draws, design.n_groups))
    if n_draws == 0 or rows.J == 0:
        return out
    L_all = _prior_factor(sd, corr)
    quad = _hermite(nodes, q)

    def work(lo: int, hi: int) -> None:
        v0 = np.zeros((rows.J, q))  # the mode of the previous chunk: a warm start
        for sl in _chunks(hi - lo, rows.n, _NEWTON_CELLS):
            sl = slice(lo + sl.start, lo + sl.stop)
            out[sl, rows.present], v0 = _group_chunk(rows, beta[sl], L_all[sl], v0, quad)

    bounds = np.linspace(0, n_draws, min(max(int(workers), 1), n_draws) + 1).astype(int)
    if len(bounds) == 2:
        work(0, n_draws)
    else:
        with ThreadPoolExecutor(len(bounds) - 1) as pool:
            list(pool.map(work, bounds[:-1], bounds[1:]))
    return out


def _group_chunk(rows: _SortedRows, beta, L, v0, quad) -> tuple[np.ndarray, np.ndarray]:
    """Marginal log-likelihoods (d, J) of a chunk of draws, and the mean mode."""
    z, logw, grid = quad
    q = rows.q
    O = beta @ rows.X.T
    YO = rows.segsum(O * rows.y)
    st = _mode(rows, O, YO, L, v0)
    C = _cholesky(st.H)
    log_det_R = -np.log(np.diagonal(C, axis1=-2, axis2=-1)).sum(-1)
    if len(z) == 1:
        return st.f + log_det_R, _warm_start(st.v)
    # R = C^-T (upper), R R' = H^-1; node k: v = v_hat + R z_k, u = u_hat + M z_k
    R = np.zeros_like(C)
    R[..., 0, 0] = 1.0 / C[..., 0, 0]
    if q == 2:
        R[..., 1, 1] = 1.0 / C[..., 1, 1]
        R[..., 0, 1] = -C[..., 1, 0] / (C[..., 0, 0] * C[..., 1, 1])
    M = L[:, None] @ R
    sp = _node_sums(rows, st.eta, [rows.combine(M[..., c]) for c in range(q)], z)
    u_k = st.u[..., None] + M @ grid.T  # (d, J, q, K)
    v_k = st.v[..., None] + R @ grid.T
    terms = YO[..., None] + (rows.Yw[..., None] * u_k).sum(-2) - sp
    terms -= 0.5 * (v_k * v_k).sum(-2)
    terms += 0.5 * (grid * grid).sum(-1) + logw
    return log_det_R + logsumexp(terms, axis=-1), _warm_start(st.v)


def _warm_start(v: np.ndarray) -> np.ndarray:
    """Mean mode over a chunk's draws (J, q), to start the next chunk from."""
    v0 = v.mean(axis=0)
    return np.where(np.isfinite(v0), v0, 0.0)
