"""Hierarchical logistic regression (Bernoulli outcome), the group effects sampled.

A Bernoulli likelihood cannot be collapsed, so the group effects stay in the model.
Their parameterisation is chosen per group *and per varying coefficient* (``"auto"``):
a coefficient whose group data are informative (its Fisher information, ``n_j p (1 - p)``
for the intercept and ``p (1 - p)`` times the within-group sum of squares for a slope,
times the group variance of that coefficient, above 1) is sampled *centred*, the
others *non-centred* — the mixed parameterisation that avoids both the funnel of
weakly informed effects (a slope that barely varies within groups, a group SD near
zero) and the slow mixing of the non-centred form for well-informed ones. The group
variance in that rule is a quick estimate from the data (below), so a slope whose SD
is near zero is sampled non-centred even in large groups.

With ``L`` the Cholesky factor of the group covariance ``S`` and ``z_j = L^-1 u_j``,
coordinate ``a`` of group ``j`` is either *centred* — the group's coefficient
``b_ja = theta_a + u_ja`` is sampled, with the conditional prior
``N(theta_a + sum_{c<a} L_ac z_jc, L_aa^2)`` — or *non-centred* — ``z_ja ~ N(0, 1)``
is sampled. A centred coefficient's rows depend on ``b_ja`` alone, not on the
population mean ``theta_a``, so the two are not tied along a ridge.

Speed at many rows (none of it changes the posterior):

- **Whitening.** Every free parameter is an affine function of the sampled vector
  ``w`` (``v = m + C w``, constant Jacobian), with ``m`` and ``C`` from a cheap
  approximation of the posterior: a pooled logistic fit for ``theta``, and one small
  Newton solve per group for its coefficients (a 2 x 2 block of ``C`` per group with
  both coefficients centred, which also removes the correlation of a group's
  intercept and slope). NUTS then starts in the bulk with a mass matrix that is
  nearly right, so warm-up is short.
- **Likelihood.** With the default sampler the log-likelihood and its gradient come
  from one NumPy operation (:class:`LogitLoglik`): SIMD ``exp``/``log``, gathers and
  ``bincount`` scatter-adds, several times faster than the compiled element-wise
  loop. nutpie and NumPyro compile the model themselves, so for them the same
  likelihood is written as a PyTensor graph.

May import: numpy, pymc, pytensor, vagg_bayes.bayes.design, vagg_bayes.bayes.priors.
"""

from __future__ import annotations

import functools

import numpy as np

from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.priors import Priors

PARAMETERIZATIONS = ("auto", "centered", "noncentered")
_TYPICAL_GROUP_SD = 0.5  # on the logit scale; used only to choose the parameterisation


def _information(design: Design, varying: list[int]) -> np.ndarray:
    """Per group and varying column: ``p (1 - p)`` times the column's within-group sum of
    squares (``n_j`` for the intercept), (J, q)."""
    J, codes = design.n_groups, design.group_codes
    p = float(np.clip(design.y.mean(), 1e-3, 1 - 1e-3))
    n_j = np.bincount(codes, minlength=J).astype(float)
    out = np.empty((J, len(varying)))
    for a, k in enumerate(varying):
        x = design.Z[:, k]
        if np.all(x == x[0]):
            out[:, a] = n_j * x[0] ** 2
            continue
        s1 = np.bincount(codes, weights=x, minlength=J)
        s2 = np.bincount(codes, weights=x * x, minlength=J)
        out[:, a] = np.maximum(s2 - s1**2 / np.maximum(n_j, 1.0), 0.0)
    return out * p * (1 - p)


def centered_mask(
    design: Design, parameterization: str = "auto", group_sd: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask (J, q): which group coefficients are sampled centred.

    ``"auto"``: coefficient ``a`` of group ``j`` is centred when its information times
    ``group_sd[a]**2`` exceeds 1 (``group_sd`` defaults to 0.5 on the logit scale per
    standardised unit).
    """
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {', '.join(PARAMETERIZATIONS)}; "
            f"got {parameterization!r}."
        )
    q = len(design.varying)
    if parameterization != "auto":
        return np.full((design.n_groups, q), parameterization == "centered")
    sd = np.full(q, _TYPICAL_GROUP_SD) if group_sd is None else np.asarray(group_sd)
    return _information(design, list(design.varying)) * sd**2 > 1.0


def centered_groups(design: Design, parameterization: str = "auto") -> np.ndarray:
    """Boolean mask (J,): groups whose intercept is sampled centred (typical group SD)."""
    return centered_mask(design, parameterization)[:, 0]


# --------------------------------------------------------------------------- likelihood


def softplus(eta: np.ndarray) -> np.ndarray:
    """``log(1 + exp(eta))``, stable for any ``eta``, with vectorised ``exp`` and ``log``."""
    e = np.abs(eta)
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1.0
    np.log(e, out=e)
    e += np.maximum(eta, 0.0)
    return e


def _softplus_sigmoid(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log(1 + exp(eta))`` and ``1 / (1 + exp(-eta))``, stable for any ``eta``.

    NumPy's ``exp`` and ``log`` are vectorised (SIMD); ``log1p`` and ``where`` are not,
    hence ``softplus = max(eta, 0) + log(1 + exp(-|eta|))`` (the absolute error of
    ``log`` against ``log1p`` is below 1e-16) and ``sigmoid = exp(eta - softplus)``.
    """
    e = np.abs(eta)
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1.0
    np.log(e, out=e)
    softplus = np.maximum(eta, 0.0)
    softplus += e
    np.subtract(eta, softplus, out=e)
    np.exp(e, out=e)
    return softplus, e


class _Rows:
    """The row-level arrays of a logistic regression with group coefficients.

    Rows are stored sorted by group (the log-likelihood does not depend on their
    order), so that a group coefficient reaches its rows by ``repeat`` and a gradient
    is a segment sum (``add.reduceat``): both contiguous and several times faster than
    a gather by group code and ``bincount``. Products with the design use ``einsum`` on
    a Fortran-ordered copy: no BLAS call, whose threads cost more than they save on
    these thin matrices.
    """

    def __init__(self, design: Design, rest: list[int], varying: list[int], codes: np.ndarray):
        order = np.argsort(codes, kind="stable")
        self.J = design.n_groups
        self.counts = np.bincount(codes, minlength=self.J)
        if np.any(self.counts == 0):
            raise ValueError("every group needs at least one row")
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.y = np.ascontiguousarray(design.y[order], dtype=float)
        self.Z_rest = np.asfortranarray(design.Z[order][:, rest]) if rest else None
        self.W = [None if (k == 0 and np.all(design.Z[:, 0] == 1.0))
                  else np.ascontiguousarray(design.Z[order, k]) for k in varying]
        self.codes = np.ascontiguousarray(codes[order], dtype=np.intp)
        self.n_rest = len(rest)

    def group_sum(self, x: np.ndarray) -> np.ndarray:
        """Sum of ``x`` (rows in stored order) within each group, (J,)."""
        return np.add.reduceat(x, self.starts)

    def eta(self, theta_rest: np.ndarray, coef: np.ndarray) -> np.ndarray:
        eta = (np.einsum("ij,j->i", self.Z_rest, theta_rest) if self.Z_rest is not None
               else np.zeros(len(self.y)))
        for a, W in enumerate(self.W):
            g = np.repeat(coef[:, a], self.counts)
            if W is not None:
                g *= W
            eta += g
        return eta

    def loglik_grad(self, theta_rest: np.ndarray, coef: np.ndarray):
        eta = self.eta(theta_rest, coef)
        softplus, sigmoid = _softplus_sigmoid(eta)
        logp = float(np.einsum("i,i->", self.y, eta) - softplus.sum())
        r = np.subtract(self.y, sigmoid, out=sigmoid)
        g_theta = (np.einsum("ij,i->j", self.Z_rest, r) if self.Z_rest is not None
                   else np.zeros(0))
        g_coef = np.empty((self.J, len(self.W)))
        for a, W in enumerate(self.W):
            g_coef[:, a] = self.group_sum(r if W is None else r * W)
        return logp, g_theta, g_coef


@functools.cache
def _make_loglik_op():
    from pytensor.gradient import DisconnectedType
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op
    import pytensor.tensor as pt

    class LogitLoglik(Op):
        """Log-likelihood of a logistic regression, with its gradient as extra outputs.

        Inputs ``theta_rest`` (population coefficients of the non-varying columns)
        and ``coef`` (J, q) (every group's coefficients of the varying columns);
        outputs the log-likelihood and its gradient with respect to both. The
        gradient of the first output reuses the other two, so one call computes all.
        Instances compare by identity (each holds its own data).
        """

        def __init__(self, rows: _Rows):
            self.rows = rows

        def make_node(self, theta_rest, coef):
            theta_rest = pt.as_tensor_variable(theta_rest).astype("float64")
            coef = pt.as_tensor_variable(coef).astype("float64")
            return Apply(self, [theta_rest, coef], [pt.dscalar(), pt.dvector(), pt.dmatrix()])

        def perform(self, node, inputs, outputs):
            logp, g_theta, g_coef = self.rows.loglik_grad(*inputs)
            outputs[0][0] = np.asarray(logp)
            outputs[1][0] = g_theta
            outputs[2][0] = g_coef

        def grad(self, inputs, output_grads):
            for g in output_grads[1:]:
                if not isinstance(g.type, DisconnectedType):
                    raise NotImplementedError("only the log-likelihood output is differentiable")
            _, g_theta, g_coef = self(*inputs)
            return [output_grads[0] * g_theta, output_grads[0] * g_coef]

        def __str__(self):
            return "LogitLoglik"

    return LogitLoglik


# --------------------------------------------------------------------------- starting point


def _newton_pooled(design: Design, priors: Priors, iterations: int = 30):
    """Posterior mode and Hessian of the pooled logistic regression (no group effects)."""
    Z, y = design.Z, design.y
    prec = 1.0 / np.asarray(priors.theta_sd, dtype=float) ** 2
    mu = np.asarray(priors.theta_mu, dtype=float)
    theta = mu.copy()
    H = np.diag(prec)
    for _ in range(iterations):
        _, prob = _softplus_sigmoid(Z @ theta)
        grad = Z.T @ (y - prob) - prec * (theta - mu)
        H = (Z * (prob * (1 - prob))[:, None]).T @ Z + np.diag(prec)
        step = np.linalg.solve(H, grad)
        theta = theta + step
        if not np.all(np.isfinite(theta)):
            return mu.copy(), np.diag(prec)
        if np.max(np.abs(step)) < 1e-8:
            break
    return theta, H


def _group_newton(rows: _Rows, theta_rest, b0, prior_mean, prior_prec, iterations=8):
    """Mode and Hessian of every group's coefficients given ``theta_rest`` and a normal prior.

    ``b0`` (J, q) start, ``prior_mean`` (q,), ``prior_prec`` (q, q). Vectorised over
    groups with segment sums; returns ``b`` (J, q) and ``H`` (J, q, q).
    """
    J, q = b0.shape
    offset = rows.Z_rest @ theta_rest if rows.Z_rest is not None else np.zeros(len(rows.y))
    Ws = [np.ones(len(rows.y)) if W is None else W for W in rows.W]
    b = b0.copy()
    H = np.broadcast_to(prior_prec, (J, q, q)).copy()
    for _ in range(iterations):
        eta = offset.copy()
        for a in range(q):
            eta += np.repeat(b[:, a], rows.counts) * Ws[a]
        _, prob = _softplus_sigmoid(eta)
        r, wt = rows.y - prob, prob * (1 - prob)
        g = np.stack([rows.group_sum(r * Ws[a]) for a in range(q)], axis=1)
        g -= (b - prior_mean) @ prior_prec
        H = np.broadcast_to(prior_prec, (J, q, q)).copy()
        for a in range(q):
            for c in range(a + 1):
                h = rows.group_sum(wt * Ws[a] * Ws[c])
                H[:, a, c] += h
                if c != a:
                    H[:, c, a] += h
        step = np.linalg.solve(H, g[..., None])[..., 0]
        step = np.clip(step, -2.0, 2.0)  # groups with separation: keep the start sane
        b = b + step
        if np.max(np.abs(step)) < 1e-6:
            break
    return b, H


def _prefit(design: Design, priors: Priors, rows: _Rows, rest: list[int], w: list[int]):
    """Quick approximation of the posterior: the starting point and scales of whitening.

    Returns ``theta0`` (p,), the pooled Hessian ``H0`` (p, p), every group's
    coefficient mode ``b`` (J, q) and Hessian ``Hb`` (J, q, q) under the prior
    ``N(theta_w, S0)``, and the group SDs and correlation of ``S0``: the spread of the
    group modes less their mean sampling variance (floored at 0.05).
    """
    q, J = len(w), design.n_groups
    theta0, H0 = _newton_pooled(design, priors)
    b_init = np.tile(theta0[w], (J, 1))
    typical = np.full(q, _TYPICAL_GROUP_SD)
    b, Hb = _group_newton(rows, theta0[rest], b_init, theta0[w], np.diag(1 / typical**2))
    S = np.cov(b.T).reshape(q, q) - np.linalg.inv(Hb).mean(axis=0)
    sd = np.sqrt(np.clip(np.diag(S), 0.05**2, None))
    corr0 = float(np.clip(S[0, 1] / (sd[0] * sd[1]), -0.8, 0.8)) if q == 2 else 0.0
    R = np.array([[1.0, corr0], [corr0, 1.0]])[:q, :q]
    S0 = sd[:, None] * R * sd[None, :]
    theta_w = b.mean(axis=0)
    b, Hb = _group_newton(rows, theta0[rest], b, theta_w, np.linalg.inv(S0), iterations=3)
    theta0 = theta0.copy()
    theta0[w] = theta_w
    return theta0, H0, b, Hb, sd, corr0


def _whitening(design, rest, w, theta0, H0, b, Hb, sd, corr0, centred):
    """Affine map ``v = m + C w`` that makes the posterior roughly N(0, I).

    The population block (``theta``, ``log tau``, ``logit((1 + corr) / 2)``) gets a
    diagonal scale ``s``; the group block, in group order, ``F = M + C R`` with a lower
    triangular ``C`` per group over its centred coordinates (its approximate
    conditional covariance) and the identity for non-centred ones.
    """
    p, q, J = design.p, len(w), design.n_groups
    s_theta = np.empty(p)
    if rest:
        s_theta[rest] = np.sqrt(np.clip(np.diag(np.linalg.inv(H0[np.ix_(rest, rest)])),
                                        1e-12, None))
    s_theta[w] = sd / np.sqrt(J)
    m = [*theta0, *np.log(sd)]
    s = [*s_theta, *np.full(q, 1.0 / np.sqrt(2.0 * J) + 0.05)]
    if q == 2:
        m.append(float(np.log1p(corr0) - np.log1p(-corr0)))  # logit((1 + corr) / 2)
        s.append(2.0 / np.sqrt(J) + 0.1)
    # Group block: the covariance of the centred coordinates given nothing else moves.
    V = np.linalg.inv(Hb)  # (J, q, q)
    M = np.where(centred, b, 0.0)
    C = np.zeros((J, q, q))
    for a in range(q):
        C[:, a, a] = np.where(centred[:, a], np.sqrt(V[:, a, a]), 1.0)
    if q == 2:
        both = centred.all(axis=1)
        if both.any():
            C[both] = np.linalg.cholesky(V[both])
    return np.asarray(m), np.asarray(s), M, C


# --------------------------------------------------------------------------- the model


def build_logit_model(
    design: Design,
    priors: Priors,
    *,
    parameterization: str = "auto",
    numpy_likelihood: bool = True,
):
    """PyMC model of a multilevel logistic regression.

    Parameters
    ----------
    design : Design
    priors : Priors
    parameterization : {"auto", "centered", "noncentered"}
        Group effects: see :func:`centered_mask` (``"auto"`` uses the group SDs
        estimated from the data).
    numpy_likelihood : bool, default True
        Compute the log-likelihood with :class:`LogitLoglik` (a NumPy operation: fast
        for PyMC's NUTS, but opaque to nutpie and NumPyro, which need False).

    Returns
    -------
    pymc.Model
        With a group: one free vector ``w`` (the whitened unconstrained parameters);
        deterministics ``theta`` (standardised coefficients), ``tau``, ``corr``
        (varying slope) and ``u`` (J, q): the standardised group effects (deviations
        from ``theta``) in group order. ``model.centred`` is the (J, q) mask of
        centred coefficients. Without a group: ``theta`` is the free variable. The log
        posterior is in ``Potential`` terms.

    Notes
    -----
    ``logit P(y_ij = 1) = z_ij' theta + w_ij' u_j``, ``u_j ~ N(0, S)``,
    ``S = diag(tau) R diag(tau) = L L'``; priors ``theta ~ N(theta_mu, theta_sd)``,
    ``tau ~ HalfNormal(tau_scale)``, ``(1 + corr) / 2 ~ Beta(lkj_eta, lkj_eta)``.
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    q = len(design.varying)
    coords: dict[str, list] = {"term": list(design.terms)}
    if not q:
        theta0, _ = _newton_pooled(design, priors)
        with pm.Model(coords=coords) as model:
            theta = pm.Normal("theta", mu=priors.theta_mu, sigma=priors.theta_sd, dims="term",
                              initval=theta0)
            eta = pt.dot(pytensor.shared(design.Z, name="Z"), theta)
            y = pytensor.shared(np.asarray(design.y, dtype=float), name="y")
            pm.Potential("loglik", pt.sum(y * eta - pt.softplus(eta)))
        return model

    p, J = design.p, design.n_groups
    w = list(design.varying)
    rest = [k for k in range(p) if k not in w]
    rows = _Rows(design, rest, w, design.group_codes)
    theta0, H0, b, Hb, sd, corr0 = _prefit(design, priors, rows, rest, w)
    centred = centered_mask(design, parameterization, group_sd=sd)
    m, s, M, Cg = _whitening(design, rest, w, theta0, H0, b, Hb, sd, corr0, centred)
    n_pop = p + q + (q == 2)

    labels = [str(v) for v in design.group_labels]
    varying_names = [design.terms[k] for k in w]
    names = [f"theta[{t}]" for t in design.terms] + [f"log_tau[{t}]" for t in varying_names]
    if q == 2:
        names.append("logit_corr")
    names += [f"{'b' if centred[j, a] else 'z'}[{labels[j]},{t}]"
              for j in range(J) for a, t in enumerate(varying_names)]
    coords.update(varying=varying_names, group=labels, unconstrained=names)

    # Every data-dependent number is a shared variable: a literal would be compiled
    # into the C code, which would then be rebuilt for each data set.
    sh = {
        "m": m, "s": s,
        "theta_mu": np.asarray(priors.theta_mu, dtype=float),
        "theta_sd": np.asarray(priors.theta_sd, dtype=float),
        "tau_scale": np.asarray(priors.tau_scale, dtype=float),
        "lkj_eta": np.asarray(priors.lkj_eta, dtype=float),
    }
    for a in range(q):
        sh[f"M{a}"] = M[:, a]
        sh[f"C{a}{a}"] = Cg[:, a, a]
        sh[f"c{a}"] = centred[:, a].astype(float)
        sh[f"n_c{a}"] = float(centred[:, a].sum())
    if q == 2:
        sh["C10"] = Cg[:, 1, 0]
    sh = {k: pytensor.shared(np.asarray(v, dtype=float), name=k) for k, v in sh.items()}

    with pm.Model(coords=coords) as model:
        wv = pm.Flat("w", dims="unconstrained")
        pop = sh["m"] + sh["s"] * wv[:n_pop]
        theta = pop[:p]
        log_tau = pop[p : p + q]
        tau = pt.exp(log_tau)
        lp = -0.5 * pt.sum(((theta - sh["theta_mu"]) / sh["theta_sd"]) ** 2)
        lp = lp + pt.sum(-0.5 * (tau / sh["tau_scale"]) ** 2 + log_tau)
        corr = None
        L_diag = [tau[0]]
        if q == 2:
            x = pop[p + q]
            corr = pt.tanh(x / 2)  # = 2 sigmoid(x) - 1; Beta(eta, eta) on (1 + corr) / 2
            lp = lp - sh["lkj_eta"] * (pt.softplus(x) + pt.softplus(-x))
            l10 = tau[1] * corr
            L_diag.append(tau[1] * pt.sqrt(1 - corr**2))
        R = wv[n_pop:].reshape((J, q))
        F0 = sh["M0"] + sh["C00"] * R[:, 0]
        F = [F0] if q == 1 else [F0, sh["M1"] + sh["C10"] * R[:, 0] + sh["C11"] * R[:, 1]]
        # Coordinate a: centred (c = 1) samples b_ja, non-centred (c = 0) samples z_ja.
        zs, bs = [], []
        for a in range(q):
            c, La = sh[f"c{a}"], L_diag[a]
            mean = theta[w[a]] + (l10 * zs[0] if a == 1 else 0.0)
            z = c * ((F[a] - mean) / La) + (1 - c) * F[a]
            bs.append(c * F[a] + (1 - c) * (mean + La * F[a]))
            zs.append(z)
            # log N(z | 0, 1) and, for centred entries, the Jacobian 1 / L_aa.
            lp = lp - 0.5 * pt.sum(z**2) - sh[f"n_c{a}"] * pt.log(La)
        coef = bs[0][:, None] if q == 1 else pt.stack(bs, axis=1)  # (J, q), group order
        if numpy_likelihood:
            loglik = _make_loglik_op()(rows)(theta[rest], coef)[0]
        else:
            y = pytensor.shared(rows.y, name="y")
            eta = (pt.dot(pytensor.shared(rows.Z_rest, name="Z_rest"), theta[rest])
                   if rest else pt.zeros(len(rows.y)))
            for a, W in enumerate(rows.W):
                g = coef[:, a][rows.codes]
                eta = eta + (g if W is None else g * pytensor.shared(W, name=f"W{a}"))
            loglik = pt.sum(y * eta - pt.softplus(eta))
        pm.Potential("logp", lp + loglik)
        pm.Deterministic("theta", theta, dims="term")
        pm.Deterministic("tau", tau, dims="varying")
        if q == 2:
            pm.Deterministic("corr", corr)
        pm.Deterministic("u", coef - theta[w][None, :], dims=("group", "varying"))
    model.centred = centred
    return model
