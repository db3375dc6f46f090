"""The multilevel logistic log posterior and its gradient, compiled: the logit model's twin.

:func:`vagg_bayes.bayes.glm.build_logit_model` writes the log posterior of the whitened
vector ``w`` as a PyTensor graph around one NumPy likelihood operation. PyMC's NUTS calls
that graph once per leapfrog step; with about a hundred small nodes for the population
and group part and NumPy's many passes over the rows, a call at 20,000 rows costs about
0.3 ms, most of a refit's time. This module computes the same value and gradient with
numba kernels:

- the population and group part (whitening, priors, partially centred group
  coordinates, see :func:`~vagg_bayes.bayes.glm.build_logit_model`) forward in one loop
  over groups, keeping what the reverse pass needs, and back in another;
- the rows in two passes around NumPy's vectorised ``exp`` (SIMD, several times faster
  than a scalar ``exp`` in a loop): the linear predictor, then the residuals, their
  segment sums by group and ``sum log(1 + exp(-|eta|))`` as the log of products of
  128 terms (each in (1, 2]), which replaces 20,000 logarithms by about 160.

:class:`~vagg_bayes.bayes.sample.ChainSampler` uses it when the model carries it
(``model.fast_logp_dlogp``); tests check it against the PyTensor graph to rounding
error.

May import: numpy, ``bayes.numeric`` (numba, lazily).
"""

from __future__ import annotations

import functools
import math

import numpy as np

# columns of the per-group work array the forward pass leaves for the reverse pass
_Z0, _Z1, _L00, _L10, _L11, _MEAN1, _E0, _E1 = range(8)
_CHUNK = 128  # terms 1 + exp(-|eta|) multiplied before one logarithm (<= 2**128)


def _forward_py(w, shift, scale, theta_mu, theta_sd, tau_scale, lkj_eta, xbar, glv, gl_idx,
                rlm, rl_idx, coord_mean, chol, lam, p, q, v1, coef, work, pop,
                cell_mean, cell_scale, cell_lam, cell_eff, cell_z):
    """Population, group and cell part: returns its log density; fills ``coef`` (J, q)
    with the group coefficients ``(c_j, b_j1)``, ``work`` (J, 8), ``pop`` (the population
    vector ``shift + scale w``) and, with group-time cells (``cell_mean`` not empty; their
    ``log sd`` last in ``pop``), ``cell_eff`` and ``cell_z``."""
    n_pop = shift.shape[0]
    J = coef.shape[0]
    for i in range(n_pop):
        s = shift[i]
        for k in range(n_pop):
            s += scale[i, k] * w[k]
        pop[i] = s
    lp = 0.0
    for i in range(p):
        z = (pop[i] - theta_mu[i]) / theta_sd[i]
        lp -= 0.5 * z * z
    t0 = math.exp(pop[p])
    r = t0 / tau_scale[0]
    lp += -0.5 * r * r + pop[p]
    t1 = 0.0
    c = 0.0
    if q == 2:
        t1 = math.exp(pop[p + 1])
        r = t1 / tau_scale[1]
        lp += -0.5 * r * r + pop[p + 1]
        x = pop[p + 2]
        # softplus(x) + softplus(-x) = |x| + 2 log1p(exp(-|x|))
        lp -= lkj_eta * (abs(x) + 2.0 * math.log1p(math.exp(-abs(x))))
        c = math.tanh(x / 2.0)
    kc = math.sqrt(max(1.0 - c * c, 0.0))
    for j in range(J):
        g = 0.0
        for i in range(gl_idx.shape[0]):
            g += glv[j, i] * pop[gl_idx[i]]
        for i in range(rl_idx.shape[0]):
            g += rlm[j, i] * pop[rl_idx[i]]
        base = n_pop + j * q
        xb = 0.0
        s01 = 0.0
        if q == 2:
            xb = xbar[j]
            s01 = t0 * t1 * c
            L00 = math.sqrt(t0 * t0 + 2.0 * xb * s01 + xb * xb * t1 * t1)
            mean0 = pop[0] + g + xb * pop[v1]
        else:
            L00 = t0
            mean0 = pop[0] + g
        F0 = coord_mean[j, 0] + chol[j, 0, 0] * w[base]
        e0 = math.exp(-lam[j, 0] * math.log(L00))
        z0 = (F0 - lam[j, 0] * mean0) * e0
        coef[j, 0] = mean0 + L00 * z0
        lp += -0.5 * z0 * z0 - lam[j, 0] * math.log(L00)
        work[j, _Z0] = z0
        work[j, _L00] = L00
        work[j, _E0] = e0
        if q == 2:
            l10 = (s01 + xb * t1 * t1) / L00
            L11 = t0 * t1 * kc / L00
            mean1 = pop[v1] + l10 * z0
            F1 = coord_mean[j, 1] + chol[j, 1, 0] * w[base] + chol[j, 1, 1] * w[base + 1]
            e1 = math.exp(-lam[j, 1] * math.log(L11))
            z1 = (F1 - lam[j, 1] * mean1) * e1
            coef[j, 1] = mean1 + L11 * z1
            lp += -0.5 * z1 * z1 - lam[j, 1] * math.log(L11)
            work[j, _Z1] = z1
            work[j, _L10] = l10
            work[j, _L11] = L11
            work[j, _MEAN1] = mean1
            work[j, _E1] = e1
    n_cells = cell_mean.shape[0]
    if n_cells:
        base = n_pop + J * q
        log_s = pop[n_pop - 1]
        s_cell = math.exp(log_s)
        r = s_cell / tau_scale[0]
        lp += -0.5 * r * r + log_s
        for c in range(n_cells):
            F = cell_mean[c] + cell_scale[c] * w[base + c]
            z = F * math.exp(-cell_lam[c] * log_s)
            cell_z[c] = z
            cell_eff[c] = s_cell * z
            lp += -0.5 * z * z - cell_lam[c] * log_s
    return lp


def _reverse_py(w, scale, theta_mu, theta_sd, tau_scale, lkj_eta, xbar, glv, gl_idx, rlm,
                rl_idx, chol, lam, p, q, v1, g_coef, g_rest, work, pop, cell_scale, cell_lam,
                cell_z, g_cell):
    """Gradient of the whole log posterior with respect to ``w``, given the likelihood's
    gradient with respect to the group coefficients ``g_coef`` (J, q), the row-level
    coefficients ``g_rest`` and the cell effects ``g_cell``."""
    n_pop = pop.shape[0]
    J = g_coef.shape[0]
    gpop = np.zeros(n_pop)
    gw = np.zeros(w.shape[0])
    for i in range(p):
        gpop[i] -= (pop[i] - theta_mu[i]) / theta_sd[i] ** 2
    for i in range(rl_idx.shape[0]):
        gpop[rl_idx[i]] += g_rest[i]
    t0 = math.exp(pop[p])
    r = t0 / tau_scale[0]
    gpop[p] += -r * r + 1.0
    t1 = 0.0
    c = 0.0
    if q == 2:
        t1 = math.exp(pop[p + 1])
        r = t1 / tau_scale[1]
        gpop[p + 1] += -r * r + 1.0
        c = math.tanh(pop[p + 2] / 2.0)
        gpop[p + 2] -= lkj_eta * c
    kc = math.sqrt(max(1.0 - c * c, 0.0))
    gt0 = 0.0
    gt1 = 0.0
    gc = 0.0
    for j in range(J):
        base = n_pop + j * q
        z0 = work[j, _Z0]
        L00 = work[j, _L00]
        e0 = work[j, _E0]
        lam0 = lam[j, 0]
        gb0 = g_coef[j, 0]
        gz0 = gb0 * L00 - z0
        gL00 = gb0 * z0 - lam0 / L00
        gmean0 = gb0
        xb = 0.0
        l10 = 0.0
        L11 = 0.0
        gl10 = 0.0
        gL11 = 0.0
        if q == 2:
            xb = xbar[j]
            z1 = work[j, _Z1]
            l10 = work[j, _L10]
            L11 = work[j, _L11]
            e1 = work[j, _E1]
            lam1 = lam[j, 1]
            gb1 = g_coef[j, 1]
            gz1 = gb1 * L11 - z1
            gL11 = gb1 * z1 - lam1 / L11 - lam1 * z1 * gz1 / L11
            gF1 = gz1 * e1
            gmean1 = gb1 - lam1 * e1 * gz1
            gw[base] += gF1 * chol[j, 1, 0]
            gw[base + 1] += gF1 * chol[j, 1, 1]
            gpop[v1] += gmean1
            gl10 = gmean1 * z0
            gz0 += gmean1 * l10
        # z0 = (F0 - lam0 mean0) e0 with its adjoint complete
        gL00 += -lam0 * z0 * gz0 / L00
        gF0 = gz0 * e0
        gmean0 += -lam0 * e0 * gz0
        gw[base] += gF0 * chol[j, 0, 0]
        gpop[0] += gmean0
        for i in range(gl_idx.shape[0]):
            gpop[gl_idx[i]] += glv[j, i] * gmean0
        for i in range(rl_idx.shape[0]):
            gpop[rl_idx[i]] += rlm[j, i] * gmean0
        if q == 2:
            gpop[v1] += xb * gmean0
            # l10 = (s01 + xb t1^2) / L00 and L11 = t0 t1 kc / L00
            gs01 = gl10 / L00
            gt1 += gl10 * 2.0 * xb * t1 / L00
            gL00 += -gl10 * l10 / L00 - gL11 * L11 / L00
            gt0 += gL11 * t1 * kc / L00
            gt1 += gL11 * t0 * kc / L00
            if kc > 0.0:
                gc += -gL11 * t0 * t1 * c / (kc * L00)
            # L00 = sqrt(t0^2 + 2 xb s01 + xb^2 t1^2), s01 = t0 t1 c
            gV = gL00 / (2.0 * L00)
            gt0 += gV * 2.0 * t0
            gs01 += gV * 2.0 * xb
            gt1 += gV * 2.0 * xb * xb * t1
            gt0 += gs01 * t1 * c
            gt1 += gs01 * t0 * c
            gc += gs01 * t0 * t1
        else:
            gt0 += gL00
    gpop[p] += gt0 * t0
    if q == 2:
        gpop[p + 1] += gt1 * t1
        gpop[p + 2] += gc * 0.5 * (1.0 - c * c)
    n_cells = cell_z.shape[0]
    if n_cells:
        # z = F s^-lam, e = s z, density -z^2/2 - lam log s; prior on s with its Jacobian
        base = n_pop + J * q
        log_s = pop[n_pop - 1]
        s_cell = math.exp(log_s)
        r = s_cell / tau_scale[0]
        g_log_s = -r * r + 1.0
        for k in range(n_cells):
            z = cell_z[k]
            lam_c = cell_lam[k]
            gz = g_cell[k] * s_cell - z
            # d/d log s: through e = s z, through z = F s^-lam, and -lam log s
            g_log_s += g_cell[k] * s_cell * z - lam_c * z * gz - lam_c
            gw[base + k] = gz * math.exp(-lam_c * log_s) * cell_scale[k]
        gpop[n_pop - 1] += g_log_s
    for k in range(n_pop):
        s = 0.0
        for i in range(n_pop):
            s += scale[i, k] * gpop[i]
        gw[k] = s
    return gw


def _rows_eta_py(Z_rest, W, starts, ends, theta_rest, coef, eta, neg_abs, cell_codes,
                 cell_eff):
    """Linear predictor of every row (rows sorted by group) into ``eta``, and ``-|eta|``
    into ``neg_abs``. ``Z_rest`` (n, r) and ``W`` (n, q) Fortran-ordered; ``cell_codes``
    (empty without group-time cells) each row's cell."""
    n = eta.shape[0]
    r = Z_rest.shape[1]
    if cell_codes.shape[0]:
        for i in range(n):
            eta[i] = cell_eff[cell_codes[i]]
    else:
        for i in range(n):
            eta[i] = 0.0
    for k in range(r):
        t = theta_rest[k]
        for i in range(n):
            eta[i] += Z_rest[i, k] * t
    q = W.shape[1]
    for j in range(starts.shape[0]):
        c0 = coef[j, 0]
        if q == 1:
            for i in range(starts[j], ends[j]):
                e = eta[i] + c0 * W[i, 0]
                eta[i] = e
                neg_abs[i] = -abs(e)
        else:
            c1 = coef[j, 1]
            for i in range(starts[j], ends[j]):
                e = eta[i] + c0 * W[i, 0] + c1 * W[i, 1]
                eta[i] = e
                neg_abs[i] = -abs(e)


def _rows_grad_py(Z_rest, W, y, starts, ends, eta, ex, res, g_rest, g_coef, cell_codes,
                  g_cell):
    """Log-likelihood and its gradient (into ``g_rest``, ``g_coef``, ``g_cell``) from
    ``eta`` and ``ex = exp(-|eta|)``; ``res`` receives the residuals ``y -
    sigmoid(eta)``."""
    n = eta.shape[0]
    lin = 0.0
    for i in range(n):
        e = eta[i]
        lin += y[i] * e - max(e, 0.0)
    for i in range(n):
        x = ex[i]
        num = 1.0 if eta[i] >= 0.0 else x
        res[i] = y[i] - num / (1.0 + x)
    # sum log(1 + exp(-|eta|)): the log of products of 128 terms, each in (1, 2]
    logs = 0.0
    for c0 in range(0, n, 128):  # _CHUNK
        prod = 1.0
        for i in range(c0, min(c0 + 128, n)):
            prod *= 1.0 + ex[i]
        logs += math.log(prod)
    for k in range(Z_rest.shape[1]):
        s = 0.0
        for i in range(n):
            s += res[i] * Z_rest[i, k]
        g_rest[k] = s
    for j in range(starts.shape[0]):
        for a in range(W.shape[1]):
            s = 0.0
            for i in range(starts[j], ends[j]):
                s += res[i] * W[i, a]
            g_coef[j, a] = s
    if cell_codes.shape[0]:
        for k in range(g_cell.shape[0]):
            g_cell[k] = 0.0
        for i in range(n):
            g_cell[cell_codes[i]] += res[i]
    return lin - logs


@functools.cache
def _kernels():
    from vagg_bayes.bayes.numeric import numba_jit

    # The row loops may reassociate sums (SIMD reductions; the values then differ from a
    # sequential sum by rounding only, and the same in every run); no assumption about
    # infinities or NaNs is made.
    rows = {"reassoc", "contract", "arcp"}
    return (numba_jit(_forward_py), numba_jit(_reverse_py),
            numba_jit(_rows_eta_py, fastmath=rows), numba_jit(_rows_grad_py, fastmath=rows))


class LogitPosterior:
    """``w -> (log posterior, gradient)`` of the multilevel logit model, reading current data.

    ``set_data`` points it at new rows and whitening (the compiled model's
    ``update_data`` calls it), so the function always matches the PyTensor graph's
    shared variables.

    Parameters
    ----------
    priors : dict
        ``theta_mu``, ``theta_sd`` (p,), ``tau_scale`` (scalar or (q,)), ``lkj_eta``.
    p, q : int
        Population columns; varying columns (1 or 2; the intercept first).
    varying_slope : int
        Column index of the varying slope (``q == 2``), else 0.
    group_level, row_level : list of int
        Column roles (see ``glm._Columns``).
    """

    def __init__(self, priors: dict, p: int, q: int, varying_slope: int,
                 group_level: list[int], row_level: list[int]):
        self.p, self.q, self.v1 = int(p), int(q), int(varying_slope)
        self.priors = (np.ascontiguousarray(priors["theta_mu"], dtype=float),
                       np.ascontiguousarray(priors["theta_sd"], dtype=float),
                       np.ascontiguousarray(np.broadcast_to(
                           np.asarray(priors["tau_scale"], dtype=float), (2,))),
                       float(priors["lkj_eta"]))
        self.gl_idx = np.asarray(group_level, dtype=np.intp)
        self.rl_idx = np.asarray(row_level, dtype=np.intp)
        self.kernels = _kernels()

    def set_data(self, values: dict, rows) -> None:
        """``values``: the model's data-dependent numbers (``glm._data_values``);
        ``rows``: its sorted row arrays (``glm._Rows``)."""
        q = self.q
        J = len(values["coord_mean0"])
        self.shift = np.ascontiguousarray(values["pop_shift"], dtype=float)
        self.scale = np.ascontiguousarray(values["pop_scale"], dtype=float)
        self.xbar = np.ascontiguousarray(values["xbar"] if q == 2 else np.zeros(J), dtype=float)
        self.glv = np.ascontiguousarray(np.asarray(values["group_level_values"],
                                                   dtype=float).reshape(J, -1))
        self.rlm = np.ascontiguousarray(np.asarray(values["row_level_means"],
                                                   dtype=float).reshape(J, -1))
        self.coord_mean = np.ascontiguousarray(
            np.stack([values[f"coord_mean{a}"] for a in range(q)], axis=1), dtype=float)
        chol = np.zeros((J, 2, 2))
        chol[:, 0, 0] = values["chol00"]
        if q == 2:
            chol[:, 1, 0] = values["chol10"]
            chol[:, 1, 1] = values["chol11"]
        self.chol = chol
        self.lam = np.ascontiguousarray(np.stack([values[f"lam{a}"] for a in range(q)],
                                                 axis=1), dtype=float)
        cells = "cell_mean" in values
        self.cell = tuple(np.ascontiguousarray(values[k] if cells else np.zeros(0), dtype=float)
                          for k in ("cell_mean", "cell_scale", "cell_lam"))
        n_cells = self.cell[0].size
        self.cell_codes = (np.ascontiguousarray(rows.cell_codes, dtype=np.intp) if cells
                           else np.zeros(0, dtype=np.intp))
        self._cell_eff = np.zeros(n_cells)
        self._cell_z = np.zeros(n_cells)
        self._g_cell = np.zeros(n_cells)
        n = len(rows.y)
        self.y = rows.y
        self.Z_rest = (np.asfortranarray(rows.Z_rest, dtype=float) if rows.Z_rest is not None
                       else np.zeros((n, 0), order="F"))
        self.W = np.asfortranarray(np.stack(
            [np.ones(n) if W is None else W for W in rows.W], axis=1), dtype=float)
        self.starts = np.ascontiguousarray(rows.starts, dtype=np.intp)
        self.ends = np.ascontiguousarray(rows.starts + rows.counts, dtype=np.intp)
        self._eta = np.empty(n)
        self._ex = np.empty(n)
        self._res = np.empty(n)
        self._coef = np.empty((J, q))
        self._g_coef = np.empty((J, q))
        self._g_rest = np.empty(self.Z_rest.shape[1])
        self._work = np.zeros((J, 8))
        self._pop = np.empty(len(self.shift))

    def __call__(self, w: np.ndarray):
        forward, reverse, rows_eta, rows_grad = self.kernels
        mu, sd, tau_scale, lkj = self.priors
        pop, coef, work = self._pop, self._coef, self._work
        cell_mean, cell_scale, cell_lam = self.cell
        lp = forward(w, self.shift, self.scale, mu, sd, tau_scale, lkj, self.xbar, self.glv,
                     self.gl_idx, self.rlm, self.rl_idx, self.coord_mean, self.chol, self.lam,
                     self.p, self.q, self.v1, coef, work, pop, cell_mean, cell_scale,
                     cell_lam, self._cell_eff, self._cell_z)
        theta_rest = pop[self.rl_idx]
        eta, ex = self._eta, self._ex
        rows_eta(self.Z_rest, self.W, self.starts, self.ends, theta_rest, coef, eta, ex,
                 self.cell_codes, self._cell_eff)
        np.exp(ex, out=ex)  # NumPy's SIMD exp
        lp += rows_grad(self.Z_rest, self.W, self.y, self.starts, self.ends, eta, ex,
                        self._res, self._g_rest, self._g_coef, self.cell_codes, self._g_cell)
        grad = reverse(w, self.scale, mu, sd, tau_scale, lkj, self.xbar, self.glv,
                       self.gl_idx, self.rlm, self.rl_idx, self.chol, self.lam, self.p,
                       self.q, self.v1, self._g_coef, self._g_rest, work, pop, cell_scale,
                       cell_lam, self._cell_z, self._g_cell)
        return lp, grad
