"""The collapsed Gaussian log posterior and its gradient in one compiled loop.

:mod:`vagg_bayes.bayes.collapsed` writes the log posterior of the whitened vector ``w``
as a PyTensor graph (the reference, and what nutpie and NumPyro compile). PyMC's own NUTS
calls that graph once per leapfrog step, and with about a hundred small nodes a call
costs ~75 microseconds, most of a refit's time. This module computes the same value
and gradient in one numba function (cities in one loop, ``q <= 2`` varying columns),
so a call costs a few microseconds; :class:`~vagg_bayes.bayes.sample.ChainSampler`
uses it when the model carries it (``model.fast_logp_dlogp``). Tests check it against
the PyTensor graph to rounding error.

The gradient (per group ``j``; ``M = W'W``, ``G = L'ML``, ``A = I + G/s2``,
``g = L'Wr``, ``h = A^-1 g``, ``Wr = W'y - W'Z theta``)::

    d log det A / dL = 2 M L A^-1 / s2          d log det A / ds2 = -tr(A^-1 G) / s2^2
    d g'A^-1 g / dL  = 2 (Wr - M L h / s2) h'   d g'A^-1 g / ds2  = h'G h / s2^2
    d g'A^-1 g / dtheta = -2 (W'Z)' L h

May import: numpy, ``bayes.numeric`` (numba, lazily).
"""

from __future__ import annotations

import functools
import math

import numpy as np

LOG_2PI = float(np.log(2 * np.pi))


def _posterior_py(w, m, C, N, yy, Zy, ZZ, Wy, WZ, WW, theta_mu, theta_sd, sigma_rate,
                  tau_scale, lkj_eta, q):
    """``(log posterior, gradient)`` of the whitened vector ``w`` (``v = m + C w``)."""
    k = w.shape[0]
    p = Zy.shape[0]
    v = m.copy()
    for i in range(k):
        for j in range(k):
            v[i] += C[i, j] * w[j]
    gv = np.zeros(k)
    theta = v[:p]
    sigma = math.exp(v[p])
    s2 = sigma * sigma
    # priors (with the log-Jacobians of the maps to the constrained parameters)
    lp = 0.0
    for i in range(p):
        z = (theta[i] - theta_mu[i]) / theta_sd[i]
        lp -= 0.5 * z * z
        gv[i] -= z / theta_sd[i]
    lp += -sigma_rate * sigma + v[p]
    gv[p] += -sigma_rate * sigma + 1.0
    t0 = t1 = c = 0.0
    if q >= 1:
        t0 = math.exp(v[p + 1])
        r = t0 / tau_scale[0]
        lp += -0.5 * r * r + v[p + 1]
        gv[p + 1] += -r * r + 1.0
    if q == 2:
        t1 = math.exp(v[p + 2])
        r = t1 / tau_scale[1]
        lp += -0.5 * r * r + v[p + 2]
        gv[p + 2] += -r * r + 1.0
        x = v[p + 3]
        # softplus(x) + softplus(-x) = |x| + 2 log1p(exp(-|x|))
        lp -= lkj_eta * (abs(x) + 2.0 * math.log1p(math.exp(-abs(x))))
        c = math.tanh(x / 2.0)
        gv[p + 3] -= lkj_eta * c
    # pooled residual sum of squares
    rr = yy
    Ztheta = np.zeros(p)
    for i in range(p):
        rr -= 2.0 * Zy[i] * theta[i]
        for j in range(p):
            Ztheta[i] += ZZ[i, j] * theta[j]
        rr += theta[i] * Ztheta[i]
    d_rr_theta = 2.0 * (Ztheta - Zy)
    logdet = 0.0
    Q = 0.0
    d_ld_L = np.zeros((2, 2))
    d_q_L = np.zeros((2, 2))
    d_ld_s2 = 0.0
    d_q_s2 = 0.0
    d_q_theta = np.zeros(p)
    if q >= 1:
        L00 = t0
        L10 = t1 * c
        L11 = t1 * math.sqrt(max(1.0 - c * c, 0.0))
        J = Wy.shape[0]
        for jj in range(J):
            # Wr = W'y - W'Z theta
            wr0 = Wy[jj, 0]
            for i in range(p):
                wr0 -= WZ[jj, 0, i] * theta[i]
            if q == 1:
                M00 = WW[jj, 0, 0]
                G00 = L00 * L00 * M00
                A00 = 1.0 + G00 / s2
                g0 = L00 * wr0
                h0 = g0 / A00
                logdet += math.log(A00)
                Q += g0 * h0
                ML00 = M00 * L00
                d_ld_L[0, 0] += 2.0 * ML00 / A00 / s2
                d_ld_s2 -= (G00 / A00) / (s2 * s2)
                d_q_L[0, 0] += 2.0 * (wr0 - ML00 * h0 / s2) * h0
                d_q_s2 += h0 * G00 * h0 / (s2 * s2)
                Lh0 = L00 * h0
                for i in range(p):
                    d_q_theta[i] -= 2.0 * WZ[jj, 0, i] * Lh0
            else:
                wr1 = Wy[jj, 1]
                for i in range(p):
                    wr1 -= WZ[jj, 1, i] * theta[i]
                M00 = WW[jj, 0, 0]
                M01 = WW[jj, 0, 1]
                M11 = WW[jj, 1, 1]
                # ML = M L
                ML00 = M00 * L00 + M01 * L10
                ML01 = M01 * L11
                ML10 = M01 * L00 + M11 * L10
                ML11 = M11 * L11
                # G = L' M L
                G00 = L00 * ML00 + L10 * ML10
                G01 = L00 * ML01 + L10 * ML11
                G11 = L11 * ML11
                a00 = 1.0 + G00 / s2
                a01 = G01 / s2
                a11 = 1.0 + G11 / s2
                det = a00 * a11 - a01 * a01
                i00 = a11 / det
                i01 = -a01 / det
                i11 = a00 / det
                g0 = L00 * wr0 + L10 * wr1
                g1 = L11 * wr1
                h0 = i00 * g0 + i01 * g1
                h1 = i01 * g0 + i11 * g1
                logdet += math.log(det)
                Q += g0 * h0 + g1 * h1
                # d logdet / dL = 2 ML A^-1 / s2
                d_ld_L[0, 0] += 2.0 * (ML00 * i00 + ML01 * i01) / s2
                d_ld_L[1, 0] += 2.0 * (ML10 * i00 + ML11 * i01) / s2
                d_ld_L[1, 1] += 2.0 * (ML10 * i01 + ML11 * i11) / s2
                trAG = i00 * G00 + 2.0 * i01 * G01 + i11 * G11
                d_ld_s2 -= trAG / (s2 * s2)
                # Lh = L h, MLh = M L h
                Lh0 = L00 * h0
                Lh1 = L10 * h0 + L11 * h1
                MLh0 = ML00 * h0 + ML01 * h1
                MLh1 = ML10 * h0 + ML11 * h1
                e0 = wr0 - MLh0 / s2
                e1 = wr1 - MLh1 / s2
                d_q_L[0, 0] += 2.0 * e0 * h0
                d_q_L[1, 0] += 2.0 * e1 * h0
                d_q_L[1, 1] += 2.0 * e1 * h1
                hGh = h0 * (G00 * h0 + G01 * h1) + h1 * (G01 * h0 + G11 * h1)
                d_q_s2 += hGh / (s2 * s2)
                for i in range(p):
                    d_q_theta[i] -= 2.0 * (WZ[jj, 0, i] * Lh0 + WZ[jj, 1, i] * Lh1)
    # L = -0.5 [N log 2pi + N log s2 + logdet + rr / s2 - Q / s2^2]
    lp += -0.5 * (N * (LOG_2PI + math.log(s2)) + logdet + rr / s2 - Q / (s2 * s2))
    for i in range(p):
        gv[i] += -0.5 * (d_rr_theta[i] / s2 - d_q_theta[i] / (s2 * s2))
    dL_s2 = -0.5 * (N / s2 + d_ld_s2 - rr / (s2 * s2) + 2.0 * Q / (s2 * s2 * s2)
                    - d_q_s2 / (s2 * s2))
    gv[p] += 2.0 * s2 * dL_s2
    if q >= 1:
        dLL00 = -0.5 * (d_ld_L[0, 0] - d_q_L[0, 0] / (s2 * s2))
        gv[p + 1] += dLL00 * t0
    if q == 2:
        dLL10 = -0.5 * (d_ld_L[1, 0] - d_q_L[1, 0] / (s2 * s2))
        dLL11 = -0.5 * (d_ld_L[1, 1] - d_q_L[1, 1] / (s2 * s2))
        sq = math.sqrt(max(1.0 - c * c, 0.0))
        gv[p + 2] += dLL10 * t1 * c + dLL11 * t1 * sq
        gv[p + 3] += dLL10 * t1 * (1.0 - c * c) / 2.0 - dLL11 * t1 * c * sq / 2.0
    gw = np.zeros(k)
    for j in range(k):
        for i in range(k):
            gw[j] += C[i, j] * gv[i]
    return lp, gw


@functools.cache
def _kernel():
    from vagg_bayes.bayes.numeric import numba_jit

    return numba_jit(_posterior_py)


class CollapsedPosterior:
    """``w -> (log posterior, gradient)`` of the collapsed model, reading current data.

    ``set_data`` points it at new sufficient statistics and ``set_whitening`` at a new
    ``(m, C)``: the compiled model's ``update_data`` calls both, so the function always
    matches the PyTensor graph's shared variables.
    """

    def __init__(self, arrays: dict, priors: dict, q: int):
        self.q = int(q)
        self.priors = tuple(np.ascontiguousarray(priors[key], dtype=float) for key in
                            ("theta_mu", "theta_sd"))
        self.scalars = (float(priors["sigma_rate"]),
                        np.ascontiguousarray(np.broadcast_to(
                            np.asarray(priors["tau_scale"], dtype=float), (max(self.q, 1),))),
                        float(priors["lkj_eta"]))
        self.set_data(arrays)
        self.kernel = _kernel()

    def set_data(self, a: dict) -> None:
        p = a["Zy"].shape[0]
        q = self.q
        J = a["Wy"].shape[0] if q else 1
        WW = np.zeros((J, max(q, 1), max(q, 1)))
        if q:
            WW[:, 0, 0] = a["WW00"]
        if q == 2:
            WW[:, 0, 1] = WW[:, 1, 0] = a["WW01"]
            WW[:, 1, 1] = a["WW11"]
        self.data = (float(a["N"]), float(a["yy"]),
                     np.ascontiguousarray(a["Zy"], dtype=float),
                     np.ascontiguousarray(a["ZZ"], dtype=float),
                     np.ascontiguousarray(a["Wy"], dtype=float) if q else np.zeros((1, 1)),
                     np.ascontiguousarray(a["WZ"], dtype=float) if q else
                     np.zeros((1, 1, p)),
                     WW)

    def set_whitening(self, m: np.ndarray, C: np.ndarray) -> None:
        self.m = np.ascontiguousarray(m, dtype=float)
        self.C = np.ascontiguousarray(C, dtype=float)

    def __call__(self, w: np.ndarray):
        lp, g = self.kernel(w, self.m, self.C, *self.data, *self.priors, *self.scalars,
                            self.q)
        return lp, g

    def unwhitened(self, v: np.ndarray):
        """``v -> (log posterior, gradient)`` with ``m = 0``, ``C = I`` (the mode search)."""
        k = v.shape[0]
        lp, g = self.kernel(np.ascontiguousarray(v, dtype=float), np.zeros(k), np.eye(k),
                            *self.data, *self.priors, *self.scalars, self.q)
        return float(lp), g
