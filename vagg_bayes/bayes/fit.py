"""Fit one regression equation and return its posterior on the data scale.

Gaussian equations take the collapsed path (:mod:`vagg_bayes.bayes.collapsed`),
Bernoulli ones the sampled-group-effects path (:mod:`vagg_bayes.bayes.glm`). Either
way the result is an :class:`EquationFit` whose arrays are on the data's own scale:
coefficients named by their data columns, group SDs and group effects for the
original (not standardised) treatment.

May import: numpy, scipy, arviz, xarray and the other vagg_bayes.bayes modules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from vagg_bayes.bayes.collapsed import (
    build_collapsed_model,
    group_effects_and_loglik,
    group_statistics,
)
from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.diagnostics import Diagnostics, diagnose
from vagg_bayes.bayes.glm import build_logit_model, softplus
from vagg_bayes.bayes.priors import Priors, default_priors
from vagg_bayes.bayes.sample import SamplerSettings, run_sampler

_LOGLIK_ROW_LIMIT = 20_000_000  # rows x draws above which row-wise log-likelihood is skipped


@dataclass(frozen=True, eq=False)
class EquationFit:
    """Posterior of one equation, data scale; arrays have leading (chain, draw) axes.

    Attributes
    ----------
    design : Design
    family : str
    priors : Priors
    beta : ndarray (C, D, p)
        Coefficients named by ``design.terms``.
    sigma : ndarray (C, D) or None
        Residual SD (Gaussian).
    group_sd : ndarray (C, D, q) or None
        SD of the group intercepts (and of the group slopes of the treatment).
    group_corr : ndarray (C, D) or None
        Correlation of group intercepts and slopes (varying slope only).
    group_effects : ndarray (C, D, J, q) or None
        Group deviations from ``beta`` for the varying columns.
    idata : arviz.InferenceData
        Posterior (``beta``, ``sigma``, ``group_sd``, ``group_corr``, ``group_effect``)
        with the log-likelihood per group (per row without a group).
    diagnostics : Diagnostics
    wall_time : float
        Seconds spent in the sampler (compilation included).
    """

    design: Design
    family: str
    priors: Priors
    beta: np.ndarray
    sigma: np.ndarray | None
    group_sd: np.ndarray | None
    group_corr: np.ndarray | None
    group_effects: np.ndarray | None
    idata: object
    diagnostics: Diagnostics
    wall_time: float

    @property
    def varying_terms(self) -> list[str]:
        """Names of the columns whose coefficients vary by group."""
        return [self.design.terms[k] for k in self.design.varying]

    def linear_predictor(self, draws: slice | np.ndarray, X: np.ndarray | None = None):
        """``eta`` (k, n) for the flattened draws selected by ``draws``.

        ``X`` replaces the design's data-scale population columns (e.g. with the
        treatment shifted); the varying columns are taken from it as well.
        """
        X = self.design.X if X is None else X
        beta = self.beta.reshape(-1, self.beta.shape[-1])[draws]
        eta = beta @ X.T
        if self.group_effects is not None:
            u = self.group_effects.reshape(-1, *self.group_effects.shape[2:])[draws]
            codes = self.design.group_codes
            for a, col in enumerate(self.design.varying):
                # Gather each draw's group effects row by row: (k, J) -> (k, n).
                g = np.take(np.ascontiguousarray(u[..., a]), codes, axis=1)
                x = X[:, col]
                if not np.all(x == 1.0):
                    g *= x
                eta += g
        return eta


def _to_data_scale(design: Design, theta, tau, corr, u_std):
    """Standardised draws -> data scale (see :class:`Design.transform`)."""
    beta = theta @ design.transform.T
    if tau is None:
        return beta, None, None, None
    Tw = design.varying_transform
    q = tau.shape[-1]
    R = np.broadcast_to(np.eye(q), tau.shape[:-1] + (q, q)).copy()
    if corr is not None:
        R[..., 0, 1] = R[..., 1, 0] = corr
    S = tau[..., :, None] * R * tau[..., None, :]
    S_data = Tw @ S @ Tw.T
    sd = np.sqrt(np.diagonal(S_data, axis1=-2, axis2=-1))
    corr_data = S_data[..., 0, 1] / (sd[..., 0] * sd[..., 1]) if q == 2 else None
    u = np.einsum("ab,...jb->...ja", Tw, u_std)
    return beta, sd, corr_data, u


def _posterior_arrays(idata, names):
    post = idata.posterior
    return [np.asarray(post[n]) if n in post else None for n in names]


def _bernoulli_loglik(design: Design, eta_fn, n_draws: int) -> np.ndarray:
    """Log-likelihood summed within each group: (draws, J)."""
    y = design.y
    codes, J = design.group_codes, design.n_groups
    chunk = max(1, 5_000_000 // design.n)
    out = np.empty((n_draws, J))
    for start in range(0, n_draws, chunk):
        sl = slice(start, min(start + chunk, n_draws))
        eta = eta_fn(sl)
        ll = y * eta
        ll -= softplus(eta)
        for d, row in enumerate(ll, start=start):
            out[d] = np.bincount(codes, weights=row, minlength=J)
    return out


def fit_equation(
    design: Design,
    family: str,
    settings: SamplerSettings,
    *,
    priors: Priors | None = None,
    parameterization: str = "auto",
) -> EquationFit:
    """Sample the posterior of one equation.

    Parameters
    ----------
    design : Design
    family : {"gaussian", "bernoulli"}
    settings : SamplerSettings
    priors : Priors, optional
        Default: :func:`default_priors` (scaled to the data).
    parameterization : {"auto", "centered", "noncentered"}, default "auto"
        Group effects of a Bernoulli model (Gaussian models integrate them out).

    Returns
    -------
    EquationFit
    """
    priors = priors if priors is not None else default_priors(design, family)
    q = len(design.varying)
    if family == "gaussian":
        stats = group_statistics(design)
        model = build_collapsed_model(design, priors, stats)
        idata, wall = run_sampler(model, settings)
        theta, sigma, tau, corr = _posterior_arrays(idata, ["theta", "sigma", "tau", "corr"])
        C, D = theta.shape[:2]
        flat = lambda a: None if a is None else a.reshape(C * D, *a.shape[2:])  # noqa: E731
        # Exact group effects per draw, and the log-likelihood of each group, in one pass.
        rng = np.random.default_rng(settings.random_seed + 7919)
        u_flat, ll = group_effects_and_loglik(
            stats, flat(theta), flat(sigma), flat(tau), flat(corr), rng=rng
        )
        u_std = None if u_flat is None else u_flat.reshape(C, D, design.n_groups, q)
        beta, sd, corr_data, u = _to_data_scale(design, theta, tau, corr, u_std)
        if not q:
            ll = None
    elif family == "bernoulli":
        # The NumPy likelihood is fastest for PyMC's NUTS; nutpie and NumPyro compile
        # the model themselves and need it as a PyTensor graph.
        model = build_logit_model(design, priors, parameterization=parameterization,
                                  numpy_likelihood=settings.sampler == "nuts")
        idata, wall = run_sampler(model, settings)
        theta, tau, corr, u_std = _posterior_arrays(idata, ["theta", "tau", "corr", "u"])
        C, D = theta.shape[:2]
        sigma = None
        beta, sd, corr_data, u = _to_data_scale(design, theta, tau, corr, u_std)
        ll = None
    else:  # validated by Spec; kept for direct callers
        raise ValueError(f"family must be 'gaussian' or 'bernoulli'; got {family!r}.")

    return _assemble(design, family, priors, beta, sigma, sd, corr_data, u, ll, idata, wall)


def _assemble(design, family, priors, beta, sigma, sd, corr_data, u, ll, idata, wall, *,
              extra: dict | None = None) -> EquationFit:
    """Data-scale draws -> an :class:`EquationFit` with its InferenceData and diagnostics.

    ``ll`` is the log-likelihood (draws, groups or rows), computed here when None;
    ``extra`` adds posterior variables (chain, draw) that are diagnosed too.
    """
    import arviz as az
    import xarray as xr

    C, D = beta.shape[:2]
    q = len(design.varying)
    fit = EquationFit(design, family, priors, beta, sigma, sd, corr_data, u, None, None, wall)
    if ll is None:
        if q:
            ll = _bernoulli_loglik(design, fit.linear_predictor, C * D)
        elif design.n * C * D <= _LOGLIK_ROW_LIMIT:
            ll = _row_loglik(fit)

    terms = list(design.terms)
    post = {"beta": (("chain", "draw", "term"), beta)}
    coords = {"term": terms}
    if sigma is not None:
        post["sigma"] = (("chain", "draw"), sigma)
    if sd is not None:
        coords["varying"] = fit.varying_terms
        coords["group"] = [str(g) for g in design.group_labels]
        post["group_sd"] = (("chain", "draw", "varying"), sd)
        post["group_effect"] = (("chain", "draw", "group", "varying"), u)
        if corr_data is not None:
            post["group_corr"] = (("chain", "draw"), corr_data)
    for name, arr in (extra or {}).items():
        post[name] = (("chain", "draw"), arr)
    posterior = xr.Dataset(post, coords={**coords, "chain": idata.posterior.chain,
                                         "draw": idata.posterior.draw})
    groups = {"posterior": posterior, "sample_stats": idata.sample_stats}
    if ll is not None:
        dim = "group" if q else "obs"
        groups["log_likelihood"] = xr.Dataset(
            {"y": (("chain", "draw", dim), ll.reshape(C, D, -1))},
            coords={"chain": idata.posterior.chain, "draw": idata.posterior.draw,
                    **({"group": coords["group"]} if q else {})},
        )
    out = az.InferenceData(**groups)
    diag_vars = ["beta", "sigma", "group_sd", "group_corr", *(extra or {})]
    if family == "bernoulli" and q:
        diag_vars.append("group_effect")
    diagnostics = diagnose(out, diag_vars)
    return EquationFit(
        design, family, priors, beta, sigma, sd, corr_data, u, out, diagnostics, wall
    )


def fit_joint_pair(mediator: Design, outcome: Design, settings: SamplerSettings,
                   ) -> tuple[EquationFit, EquationFit]:
    """Fit a mediator and an outcome equation (both Gaussian, each with one varying
    slope) whose group effects share one 4 x 4 covariance (:mod:`vagg_bayes.bayes.joint`).

    Returns the two :class:`EquationFit` (the mediator's first). Both carry the joint
    per-group log-likelihood; the outcome's posterior also holds ``path_corr``, the
    correlation across groups of the two varying slopes (``a_j`` and ``b_j``).
    """
    from vagg_bayes.bayes.joint import fit_joint

    priors = [dataclasses.replace(default_priors(d, "gaussian"), joint=True)
              for d in (mediator, outcome)]
    r = fit_joint(mediator, outcome, *priors, settings)
    C, D = r["shape"]
    J = mediator.n_groups
    ll = r["ll"]
    fits = []
    for e, (design, pri) in enumerate(zip((mediator, outcome), priors)):
        name = "m" if e == 0 else "y"
        sl = slice(2 * e, 2 * e + 2)
        theta = r[f"theta_{name}"].reshape(C, D, -1)
        tau = r["tau"][:, sl].reshape(C, D, 2)
        corr = r["corr"][:, 2 * e, 2 * e + 1].reshape(C, D)
        u_std = r["g"][:, :, sl].reshape(C, D, J, 2)
        beta, sd, corr_data, u = _to_data_scale(design, theta, tau, corr, u_std)
        sigma = r[f"sigma_{name}"].reshape(C, D)
        # slopes rescale by positive constants, so their correlation is scale-free
        extra = {"path_corr": r["corr"][:, 1, 3].reshape(C, D)} if e == 1 else None
        fits.append(_assemble(design, "gaussian", pri, beta, sigma, sd, corr_data, u, ll,
                              r["idata"], r["wall"], extra=extra))
    return fits[0], fits[1]


def _row_loglik(fit: EquationFit) -> np.ndarray:
    """Pointwise log-likelihood per row (models without a group): (draws, n)."""
    eta = fit.linear_predictor(slice(None))
    y = fit.design.y
    if fit.family == "gaussian":
        s = fit.sigma.reshape(-1)[:, None]
        return -0.5 * (np.log(2 * np.pi * s**2) + ((y - eta) / s) ** 2)
    return y * eta - np.logaddexp(0, eta)
