"""Two Gaussian equations whose group effects are correlated, collapsed.

The mediator equation ``M = Z_M theta_M + W_M g_M + e_M`` (group intercept and
treatment slope ``a_j``) and the outcome equation ``Y = Z_Y theta_Y + W_Y g_Y + e_Y``
(group intercept and mediator slope ``b_j``) share one group-effect vector
``g_j = (g_M, g_Y) ~ N(0, S)`` with a full 4 x 4 covariance, so the prior knows that
``a_j`` and ``b_j`` may covary across groups -- the term that the average indirect
effect ``E[a_j b_j] = E[a] E[b] + cov(a, b)`` needs (Bauer, Preacher & Gil 2006).
Fitted separately, each equation would shrink its own effects towards an independent
prior and the covariance would shrink with them.

As in :mod:`vagg_bayes.bayes.collapsed`, the group effects are integrated out
exactly from per-group sufficient statistics (cost independent of the number of
rows). With ``S = L L'``, ``A_j = blockdiag(W_kj' W_kj / s_k^2)``, ``r_kj = y_kj -
Z_kj theta_k`` and ``h_j = L' (W_kj' r_kj / s_k^2)_k``::

    log p(y_j) = sum_k [-n_kj / 2 log(2 pi s_k^2) - r_kj' r_kj / (2 s_k^2)]
                 - 1/2 log det B_j + 1/2 h_j' B_j^-1 h_j,    B_j = I + L' A_j L

and the group effects are drawn afterwards from their exact conditional posterior
``N(L B_j^-1 h_j, L B_j^-1 L')``.

May import: numpy, pymc, pytensor, vagg_bayes.bayes.design, vagg_bayes.bayes.priors,
vagg_bayes.bayes.collapsed, vagg_bayes.bayes.sample, vagg_bayes.bayes.numeric.
"""

from __future__ import annotations

import numpy as np

from vagg_bayes.bayes.collapsed import GroupStats, group_statistics
from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.numeric import LOG_2PI
from vagg_bayes.bayes.priors import Priors
from vagg_bayes.bayes.sample import (
    ChainSampler,
    SamplerSettings,
    child_seed,
    run_seeded,
    seed_sequence,
)


def _check_pair(dm: Design, dy: Design) -> None:
    for name, d in (("mediator", dm), ("outcome", dy)):
        if d.group_codes is None or len(d.varying) != 2:
            raise ValueError(f"the {name} equation needs a group and one varying slope")
    if not np.array_equal(np.asarray(dm.group_labels), np.asarray(dy.group_labels)):
        raise ValueError("the two equations must have the same groups")


def _arrays(stats: GroupStats) -> dict[str, np.ndarray]:
    varying = list(stats.varying)
    return {"n": stats.n, "yy": stats.yy, "Zy": stats.Zy, "ZZ": stats.ZZ,
            "Wy": stats.Zy[:, varying], "WZ": stats.ZZ[:, varying, :],
            "WW": stats.ZZ[:, varying][:, :, varying]}


def _ols_start(stats: GroupStats, priors: Priors) -> tuple[np.ndarray, float]:
    """Pooled least squares (a small ridge from the prior): starting theta and sigma."""
    ZZ, Zy = stats.ZZ.sum(axis=0), stats.Zy.sum(axis=0)
    prec = 1.0 / np.asarray(priors.theta_sd, dtype=float) ** 2
    theta = np.linalg.solve(ZZ + np.diag(prec), Zy + prec * np.asarray(priors.theta_mu))
    rss = stats.yy.sum() - 2 * theta @ Zy + theta @ ZZ @ theta
    return theta, float(np.sqrt(max(rss, 1e-12) / stats.n.sum()))


def _chol_logdet_quad(B, h, n: int):
    """``log det B_j`` and ``h_j' B_j^-1 h_j`` summed over groups, for ``B`` (J, n, n)
    symmetric positive definite and ``h`` (J, n): the Cholesky factor and the forward
    solve written entry by entry (element-wise over groups; no batched linear algebra)."""
    import pytensor.tensor as pt

    chol = [[None] * n for _ in range(n)]  # chol[i][k]: entry (i, k) of B's factor, (J,)
    for i in range(n):
        for k in range(i + 1):
            s = B[:, i, k]
            for m in range(k):
                s = s - chol[i][m] * chol[k][m]
            chol[i][k] = pt.sqrt(s) if i == k else s / chol[k][k]
    v = []
    for i in range(n):
        s = h[:, i]
        for m in range(i):
            s = s - chol[i][m] * v[m]
        v.append(s / chol[i][i])
    logdet = 2 * sum(pt.sum(pt.log(chol[i][i])) for i in range(n))
    quad = sum(pt.sum(x**2) for x in v)
    return logdet, quad


def build_joint_model(dm: Design, dy: Design, pm_: Priors, py_: Priors):
    """PyMC model of the pair with the group effects integrated out.

    Free variables ``theta_m``, ``theta_y`` (standardised coefficients), ``sigma_m``,
    ``sigma_y`` and ``chol`` (``LKJCholeskyCov`` of the 4 group effects, order
    ``(m intercept, m slope, y intercept, y slope)``; ``chol_stds``, ``chol_corr``).
    """
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    _check_pair(dm, dy)
    stats = [group_statistics(dm), group_statistics(dy)]
    arrs = [{k: pytensor.shared(np.asarray(v, dtype=float), name=f"{k}{e}")
             for k, v in _arrays(s).items()} for e, s in enumerate(stats)]
    starts = [_ols_start(s, p) for s, p in zip(stats, (pm_, py_), strict=True)]
    tau_scale = np.array([pm_.tau_scale] * 2 + [py_.tau_scale] * 2, dtype=float)
    J = dm.n_groups
    with pm.Model(coords={"term_m": list(dm.terms), "term_y": list(dy.terms)}) as model:
        thetas, sigmas = [], []
        for name, pri, (t0, s0) in zip(("m", "y"), (pm_, py_), starts, strict=True):
            thetas.append(pm.Normal(f"theta_{name}", mu=pri.theta_mu, sigma=pri.theta_sd,
                                    dims=f"term_{name}", initval=t0))
            sigmas.append(pm.Exponential(f"sigma_{name}", lam=pri.sigma_rate, initval=s0))
        L, _, _ = pm.LKJCholeskyCov(
            "chol", n=4, eta=pm_.lkj_eta, compute_corr=True,
            sd_dist=pm.HalfNormal.dist(sigma=tau_scale, shape=4),
        )
        loglik = 0.0
        gs, blocks = [], []
        for a, theta, sigma in zip(arrs, thetas, sigmas, strict=True):
            s2 = sigma**2
            rr = (a["yy"] - 2 * pt.dot(a["Zy"], theta)
                  + pt.sum(pt.dot(a["ZZ"], theta) * theta[None, :], axis=1))
            loglik = (loglik - 0.5 * pt.sum(a["n"]) * (LOG_2PI + pt.log(s2))
                      - 0.5 * pt.sum(rr) / s2)
            gs.append((a["Wy"] - pt.dot(a["WZ"], theta)) / s2)  # (J, 2)
            blocks.append(a["WW"] / s2)  # (J, 2, 2)
        g = pt.concatenate(gs, axis=1)  # (J, 4)
        A = pt.zeros((J, 4, 4))
        A = pt.set_subtensor(A[:, :2, :2], blocks[0])
        A = pt.set_subtensor(A[:, 2:, 2:], blocks[1])
        # B_j = I + L' A_j L, h_j = L' g_j; then the 4 x 4 Cholesky factor of every B_j
        # and the forward solve, unrolled into element-wise operations over groups.
        B = pt.eye(4)[None] + pt.dot(L.T, pt.dot(A, L)).dimshuffle(1, 0, 2)
        h = pt.dot(g, L)
        logdet, quad = _chol_logdet_quad(B, h, 4)
        pm.Potential("loglik", loglik - 0.5 * logdet + 0.5 * quad)
    model.joint_stats = stats

    def update(new_m: Design, new_y: Design) -> None:
        """Point the compiled model at new data of the same pair (same groups and
        columns; frozen priors). Raises ValueError otherwise (build a new model)."""
        _check_pair(new_m, new_y)
        if (new_m.n_groups, new_m.p, new_y.p) != (J, dm.p, dy.p):
            raise ValueError("The new data change the joint model's structure (groups or "
                             "columns); build a new model instead.")
        new_stats = [group_statistics(new_m), group_statistics(new_y)]
        for a, st in zip(arrs, new_stats, strict=True):
            for k, v in _arrays(st).items():
                a[k].set_value(np.asarray(v, dtype=float))
        model.joint_stats = new_stats

    model.update_data = update
    return model


def draw_group_effects(stats: list[GroupStats], theta_m, theta_y, sigma_m, sigma_y, chol, *,
                       rng: np.random.Generator):
    """Exact conditional draws of the 4 group effects and the per-group log-likelihood.

    Arguments are flattened draws (D leading axis; ``chol`` (D, 4, 4) the Cholesky
    factor ``L`` of the group covariance); returns ``g`` (D, J, 4) and ``ll`` (D, J)
    (both equations together).
    """
    D = theta_m.shape[0]
    J = stats[0].n.shape[0]
    A = np.zeros((D, J, 4, 4))
    g = np.empty((D, J, 4))
    ll = np.zeros((D, J))
    for e, (st, theta, sigma) in enumerate(zip(stats, (theta_m, theta_y), (sigma_m, sigma_y),
                                                   strict=True)):
        a = _arrays(st)
        s2 = (sigma**2)[:, None]
        rr = (a["yy"][None] - 2 * theta @ a["Zy"].T
              + np.einsum("dp,jpq,dq->dj", theta, a["ZZ"], theta))
        ll += -0.5 * a["n"][None] * (LOG_2PI + np.log(s2)) - 0.5 * rr / s2
        sl = slice(2 * e, 2 * e + 2)
        g[..., sl] = (a["Wy"][None] - np.einsum("jqp,dp->djq", a["WZ"], theta)) / s2[..., None]
        A[:, :, sl, sl] = a["WW"][None] / s2[..., None, None]
    Lt = np.swapaxes(chol, -1, -2)[:, None]  # (D, 1, 4, 4)
    B = np.eye(4) + Lt @ A @ chol[:, None]
    chol_B = np.linalg.cholesky(B)
    h = (Lt @ g[..., None])[..., 0]
    v = np.linalg.solve(chol_B, h[..., None])
    ll += (-np.log(np.diagonal(chol_B, axis1=-2, axis2=-1)).sum(-1)
           + 0.5 * (v[..., 0] ** 2).sum(-1))
    eps = rng.standard_normal((D, J, 4, 1))
    x = np.linalg.solve(np.swapaxes(chol_B, -1, -2), v + eps)  # B^-1 h + chol_B^-T eps
    return (chol[:, None] @ x)[..., 0], ll


class JointModel:
    """The pair compiled once and sampled for the data it is given (frozen priors).

    As :class:`~vagg_bayes.bayes.fit.EquationModel` for one equation: a refit on data
    with the same groups and columns updates the model's shared variables (no
    recompilation) and, with PyMC's NUTS, starts from the first fit's adaptation (warm
    start), so a refit on the first data with the first seed gives the first fit's draws.
    """

    def __init__(self, dm: Design, dy: Design, pm_: Priors, py_: Priors,
                 settings: SamplerSettings):
        self.priors = (pm_, py_)
        self.settings = settings
        self.model = build_joint_model(dm, dy, pm_, py_)
        self._data = (dm, dy)
        self._sampler = (ChainSampler(self.model, target_accept=settings.target_accept)
                         if settings.sampler == "nuts" else None)
        self._adaptation = None

    def use(self, dm: Design, dy: Design) -> None:
        """Point the compiled model at ``(dm, dy)``; ValueError when they change its
        structure (groups or columns: build a new :class:`JointModel`)."""
        if dm is not self._data[0] or dy is not self._data[1]:
            self.model.update_data(dm, dy)
            self._data = (dm, dy)

    def fit(self, dm: Design, dy: Design, *, seed=None, warm: bool = True) -> dict:
        """Sample the pair for ``(dm, dy)``; returns a dict of flattened draws and the
        sampler's output.

        Keys: ``theta_m`` (D, p_m), ``theta_y`` (D, p_y), ``sigma_m``, ``sigma_y`` (D,),
        ``tau`` (D, 4), ``corr`` (D, 4, 4), ``g`` (D, J, 4) (standardised group effects),
        ``ll`` (D, J); plus ``idata`` and ``wall`` (seconds) and ``shape`` (chains,
        draws). ``seed`` (int or SeedSequence; default ``settings.random_seed``): child 0
        seeds the chains, child 1 the exact draws of the group effects. Raises ValueError
        when the data change the model's structure.
        """
        self.use(dm, dy)
        seed = seed_sequence(self.settings.random_seed if seed is None else seed)
        idata, wall, adaptation = run_seeded(self.model, self._sampler, self.settings, seed,
                                             self._adaptation if warm else None)
        if self._adaptation is None:
            self._adaptation = adaptation
        return _joint_draws(self.model, idata, wall,
                            np.random.default_rng(child_seed(seed, 1)))


def _joint_draws(model, idata, wall: float, rng: np.random.Generator) -> dict:
    """The sampler's output -> :meth:`JointModel.fit`'s dict (exact group-effect draws)."""
    post = idata.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]

    def flat(name):
        x = np.asarray(post[name])
        return x.reshape(n_chains * n_draws, *x.shape[2:])

    n = 4
    packed = flat("chol")
    chol = np.zeros((n_chains * n_draws, n, n))
    chol[:, *np.tril_indices(n)] = packed
    out = {"theta_m": flat("theta_m"), "theta_y": flat("theta_y"),
           "sigma_m": flat("sigma_m"), "sigma_y": flat("sigma_y"),
           "tau": flat("chol_stds"), "corr": flat("chol_corr")}
    out["g"], out["ll"] = draw_group_effects(model.joint_stats, out["theta_m"], out["theta_y"],
                                             out["sigma_m"], out["sigma_y"], chol, rng=rng)
    out.update(idata=idata, wall=wall, shape=(n_chains, n_draws))
    return out
