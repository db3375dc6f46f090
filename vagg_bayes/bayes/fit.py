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
from vagg_bayes.bayes.glm import build_logit_model
from vagg_bayes.bayes.nested import (
    NestedDraws,
    build_nested_model,
    nested_statistics,
)
from vagg_bayes.bayes.nested import group_effects_and_loglik as nested_effects_and_loglik
from vagg_bayes.bayes.priors import Priors, default_priors, log_prior_density
from vagg_bayes.bayes.sample import (
    ChainSampler,
    SamplerSettings,
    child_seed,
    run_seeded,
    seed_sequence,
)

__all__ = ["EquationFit", "EquationModel", "child_seed", "fit_equation", "fit_joint_pair"]

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
    cell_effects : ndarray (C, D, J, T) or None
        Group-time (cell) effects, drawn exactly from their conditional posterior
        (Gaussian models with group-time effects; cells in ``design.time_labels``).
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
    cell_effects: np.ndarray | None = None

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
        if self.cell_effects is not None and self.family == "bernoulli":
            # A logit's mean response depends on the group-time effects (they do not
            # cancel in differences as in a Gaussian model).
            cells = self.cell_effects.reshape(-1, *self.cell_effects.shape[2:])[draws]
            eta += cells[:, self.design.group_codes, self.design.time_codes]
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


def _bernoulli_group_loglik(design: Design, beta, sd, corr) -> np.ndarray:
    """Marginal log-likelihood of every group of a logit model: (draws, J).

    Adaptive Gauss-Hermite with 7 nodes per dimension (error ~1e-5 on groups of tens of
    rows), or the Laplace approximation when rows x draws exceed ``_LOGLIK_ROW_LIMIT``.
    """
    from vagg_bayes.bayes.loglik import bernoulli_group_loglik

    cells = design.n * beta.shape[0] * beta.shape[1]
    laplace = cells > _LOGLIK_ROW_LIMIT
    return bernoulli_group_loglik(design, beta, sd, corr, nodes=7, laplace=laplace)


class EquationModel:
    """One equation's model, compiled once and sampled for the data it is given.

    Parameters
    ----------
    design : Design
        The design of the first fit: its encoding (levels, standardisation) and its
        priors are frozen for every later fit.
    family : {"gaussian", "bernoulli"}
    settings : SamplerSettings
    priors : Priors, optional
        Default: :func:`default_priors` of ``design`` (scaled to the first data).
    parameterization : {"auto", "centred", "noncentred"}, default "auto"
        Group effects of a Bernoulli model (Gaussian models integrate them out).

    Notes
    -----
    Gaussian models keep every data array in shared variables: :meth:`fit` on new data
    recomputes the sufficient statistics and the whitening and samples again with the
    compiled model and NUTS step (no compilation). So do Bernoulli models for data with
    the same groups (a permuted treatment, an added placebo column's refit is a new
    spec); other Bernoulli data (a subset or resample of groups) rebuild the model, with
    the frozen priors. The first fit's NUTS adaptation (mass matrix, step
    size, last point of each chain) is kept too: later fits start from it
    (:class:`~vagg_bayes.bayes.sample.ChainSampler`), unless ``warm=False``. With
    ``settings.sampler`` other than "nuts" each fit goes through ``pymc.sample`` (nutpie
    and NumPyro compile the model themselves).
    """

    def __init__(self, design: Design, family: str, settings: SamplerSettings, *,
                 priors: Priors | None = None, parameterization: str = "auto"):
        if family not in ("gaussian", "bernoulli"):
            raise ValueError(f"family must be 'gaussian' or 'bernoulli'; got {family!r}.")
        self.design = design
        self.family = family
        self.settings = settings
        self.priors = priors if priors is not None else default_priors(design, family)
        self.parameterization = parameterization
        self._model = None
        self._sampler = None
        self._stats = None
        self._data_design = None
        self._adaptation = None

    def _prepare(self, design: Design) -> None:
        """Compile for the first data; afterwards point the model at ``design``."""
        if design is self._data_design:
            return
        reusable = self._model is not None and hasattr(self._model, "update_data")
        if reusable:
            try:  # the same structure: new shared values, the same compiled code
                stats = self._model.update_data(design)
            except ValueError:
                reusable = False
            else:
                if self.family == "gaussian":
                    self._stats = stats
        if reusable:
            pass
        elif self.family == "gaussian" and design.nested:
            self._stats = nested_statistics(design)
            self._model = build_nested_model(design, self.priors, self._stats)
        elif self.family == "gaussian":
            self._stats = group_statistics(design)
            self._model = build_collapsed_model(design, self.priors, self._stats)
        else:
            # The NumPy likelihood is fastest for PyMC's NUTS; nutpie and NumPyro compile
            # the model themselves and need it as a PyTensor graph.
            self._model = build_logit_model(
                design, self.priors, parameterization=self.parameterization,
                numpy_likelihood=self.settings.sampler == "nuts")
            self._sampler = None
        if self._sampler is None and self.settings.sampler == "nuts":
            self._sampler = ChainSampler(self._model,
                                         target_accept=self.settings.target_accept)
        self._data_design = design

    def fit(self, design: Design | None = None, *, seed=None, warm: bool = True,
            loglik: bool = True) -> EquationFit:
        """Sample the posterior for ``design`` (default: the first design).

        ``seed`` (int or SeedSequence; default ``settings.random_seed``): its child 0
        seeds the chains, child 1 the exact draws of the integrated-out effects.
        ``warm`` (PyMC's NUTS): start from the first fit's adaptation when there is one
        (a fit's own draws come from the same warm stage, so a refit on the first data
        with the first seed reproduces them); ``False`` adapts afresh. ``loglik=False``
        skips the pointwise log-likelihood (replicates that need only the effects).
        """
        design = self.design if design is None else design
        self._prepare(design)
        seed = seed_sequence(self.settings.random_seed if seed is None else seed)
        idata, wall, adaptation = run_seeded(self._model, self._sampler, self.settings, seed,
                                             self._adaptation if warm else None)
        if self._adaptation is None:
            self._adaptation = adaptation
        rng = np.random.default_rng(child_seed(seed, 1))
        extra = None
        q = len(design.varying)
        if self.family == "gaussian" and design.nested:
            beta, sigma, sd, corr_data, u, ll, extra = _nested_draws(
                design, self._stats, idata, rng)
        elif self.family == "gaussian":
            theta, sigma, tau, corr = _posterior_arrays(idata, ["theta", "sigma", "tau",
                                                                "corr"])
            C, D = theta.shape[:2]
            flat = lambda a: None if a is None else a.reshape(C * D, *a.shape[2:])  # noqa: E731
            # Exact group effects per draw, and the log-likelihood of each group, in one pass.
            u_flat, ll = group_effects_and_loglik(
                self._stats, flat(theta), flat(sigma), flat(tau), flat(corr), rng=rng)
            u_std = None if u_flat is None else u_flat.reshape(C, D, design.n_groups, q)
            beta, sd, corr_data, u = _to_data_scale(design, theta, tau, corr, u_std)
            if not q:
                ll = None
        else:
            theta, tau, corr, u_std = _posterior_arrays(idata, ["theta", "tau", "corr", "u"])
            sigma, ll = None, None
            beta, sd, corr_data, u = _to_data_scale(design, theta, tau, corr, u_std)
            if design.time_codes is not None:
                extra = _logit_cell_draws(design, self._model.cells, idata, rng)
        log_prior = log_prior_density(self.priors, idata.posterior)
        return _assemble(design, self.family, self.priors, beta, sigma, sd, corr_data, u, ll,
                         idata, wall, extra=extra, log_prior=log_prior, loglik=loglik)


def fit_equation(
    design: Design,
    family: str,
    settings: SamplerSettings,
    *,
    priors: Priors | None = None,
    parameterization: str = "auto",
    seed=None,
) -> EquationFit:
    """Sample the posterior of one equation (:class:`EquationModel`, fitted once).

    Parameters
    ----------
    design : Design
    family : {"gaussian", "bernoulli"}
    settings : SamplerSettings
    priors : Priors, optional
        Default: :func:`default_priors` (scaled to the data).
    parameterization : {"auto", "centred", "noncentred"}, default "auto"
        Group effects of a Bernoulli model (Gaussian models integrate them out).
    seed : int or SeedSequence, optional
        Default ``settings.random_seed``.

    Returns
    -------
    EquationFit
    """
    model = EquationModel(design, family, settings, priors=priors,
                          parameterization=parameterization)
    return model.fit(seed=seed)


def design_effect(design: Design, sd_cell: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """How much the row count overstates the information on a group-time treatment.

    ``1 + (m - 1) rho`` (Kish) with ``m = sum n_c^2 / sum n_c`` the row-weighted mean
    number of rows per (group, time) cell and ``rho = sd_cell^2 / (sd_cell^2 + sigma^2)``
    the share of the within-unit residual variance that the rows of a cell share.
    """
    cell = design.group_codes * (int(design.time_codes.max()) + 1) + design.time_codes
    n_c = np.bincount(cell).astype(float)
    m = float((n_c**2).sum() / n_c.sum())
    rho = sd_cell**2 / (sd_cell**2 + sigma**2)
    return 1.0 + (m - 1.0) * rho


def _logit_cell_draws(design: Design, cells, idata, rng: np.random.Generator) -> dict:
    """A logit model's group-time effects as :func:`_assemble`'s extra variables:
    ``sd_cell``, ``design_effect`` (against the logistic latent variance ``pi^2 / 3``)
    and ``cell_effects`` (chain, draw, J, T); a (group, time) pair without rows draws its
    effect from ``N(0, sd_cell^2)``, as a new cell would."""
    sd_cell = np.asarray(idata.posterior["sd_cell"])
    sampled = np.asarray(idata.posterior["cell_effect"])  # (C, D, n_cells)
    C, D = sd_cell.shape
    T = int(design.time_codes.max()) + 1
    out = rng.standard_normal((C, D, design.n_groups, T)) * sd_cell[..., None, None]
    out[:, :, cells.group, cells.time] = sampled
    latent_sd = np.full_like(sd_cell, np.pi / np.sqrt(3.0))
    return {"sd_cell": sd_cell, "design_effect": design_effect(design, sd_cell, latent_sd),
            "cell_effects": out}


def _nested_draws(design: Design, stats, idata, rng: np.random.Generator):
    """Data-scale draws of a nested Gaussian fit (:mod:`vagg_bayes.bayes.nested`), its
    per-group log-likelihood and the extra posterior variables (``sd_unit``,
    ``sd_cell``, ``design_effect``) of :func:`_assemble`."""
    names = ["theta", "sigma", "sd_unit", "sd_cell", "tau", "corr"]
    arrays = _posterior_arrays(idata, names)
    C, D = arrays[0].shape[:2]
    flat = [None if a is None else a.reshape(C * D, *a.shape[2:]) for a in arrays]
    cells, u_flat, ll = nested_effects_and_loglik(stats, NestedDraws(*flat), rng=rng)
    q = len(design.varying)
    u_std = None if u_flat is None else u_flat.reshape(C, D, design.n_groups, q)
    theta, sigma, sd_unit, sd_cell, tau, corr = arrays
    beta, sd, corr_data, u = _to_data_scale(design, theta, tau, corr, u_std)
    extra = {}
    if sd_unit is not None:
        extra["sd_unit"] = sd_unit
    if sd_cell is not None:
        extra["sd_cell"] = sd_cell
        extra["design_effect"] = design_effect(design, sd_cell, sigma)
    if design.group_codes is None:
        ll = None  # one block: no per-group unit for cross-validation
    if cells is not None:
        extra["cell_effects"] = cells.reshape(C, D, *cells.shape[1:])
    return beta, sigma, sd, corr_data, u, ll, extra


def _assemble(design, family, priors, beta, sigma, sd, corr_data, u, ll, idata, wall, *,
              extra: dict | None = None, log_prior: np.ndarray | None = None,
              loglik: bool = True) -> EquationFit:
    """Data-scale draws -> an :class:`EquationFit` with its InferenceData and diagnostics.

    The pointwise log-likelihood has one meaning for every family and spec (MATH.md
    section 5): ``log_likelihood["y"]`` is per group with the group effects integrated
    out (Gaussian: exact; Bernoulli: adaptive Gauss-Hermite), or per row without a
    group; ``log_likelihood["y_row"]`` is per row, conditional on the drawn group
    effects (left out, and said so in the group's attributes, when rows x draws exceed
    ``_LOGLIK_ROW_LIMIT``). ``ll`` is the per-group array when the caller has it.
    ``extra`` adds posterior variables (chain, draw) that are diagnosed too;
    ``log_prior`` (chain, draw) becomes the ``log_prior`` group. ``loglik=False``
    leaves the log-likelihood out (replicates that need only the effects).
    """
    import arviz as az
    import xarray as xr

    C, D = beta.shape[:2]
    q = len(design.varying)
    extra = dict(extra or {})
    cell_effects = extra.pop("cell_effects", None)
    fit = EquationFit(design, family, priors, beta, sigma, sd, corr_data, u, None, None, wall)
    row_ll, note = None, "per row, conditional on the group effects"
    if not loglik:
        ll, note = None, "left out (fitted with loglik=False)"
    elif design.nested:
        note = ("left out: with unit or group-time effects (integrated out) a row's "
                "likelihood is not conditionally independent; use the per-group values")
    elif design.n * C * D <= _LOGLIK_ROW_LIMIT:
        row_ll = _row_loglik(fit)
    else:
        note = (f"left out: {design.n} rows x {C * D} draws exceed {_LOGLIK_ROW_LIMIT} "
                "cells; compute it with vagg_bayes.bayes.loglik on fewer draws")
    if not loglik:
        pass
    elif family == "bernoulli" and design.time_codes is not None:
        from vagg_bayes.bayes.loglik_cells import bernoulli_cell_group_loglik

        # the group and its cells integrated out (Laplace)
        ll = bernoulli_cell_group_loglik(design, beta, sd, corr_data, extra["sd_cell"])
    elif ll is None and q:
        ll = _bernoulli_group_loglik(design, beta, sd, corr_data)
    elif ll is None:
        ll = row_ll

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
    chain_draw = {"chain": idata.posterior.chain, "draw": idata.posterior.draw}
    if ll is not None:
        dim = "group" if q and design.group_labels is not None else "obs"
        variables = {"y": (("chain", "draw", dim), ll.reshape(C, D, -1))}
        if row_ll is not None and dim == "group":
            variables["y_row"] = (("chain", "draw", "obs"), row_ll.reshape(C, D, -1))
        meaning = ("per group, group effects integrated out" if dim == "group"
                   else "per row")
        if dim == "group" and family == "bernoulli" and design.time_codes is not None:
            meaning = ("per group, group and group-time effects integrated out (Laplace, "
                       "vagg_bayes.bayes.loglik_cells)")
        groups["log_likelihood"] = xr.Dataset(
            variables, coords={**chain_draw, **({"group": coords["group"]}
                                                if dim == "group" else {})},
            attrs={"y": meaning, "y_row": note},
        )
    if log_prior is not None:
        groups["log_prior"] = xr.Dataset({"prior": (("chain", "draw"), log_prior)},
                                         coords=chain_draw)
    out = az.InferenceData(**groups)
    diag_vars = ["beta", "sigma", "group_sd", "group_corr", *(extra or {})]
    if family == "bernoulli" and q:
        diag_vars.append("group_effect")
    diagnostics = diagnose(out, diag_vars)
    return EquationFit(
        design, family, priors, beta, sigma, sd, corr_data, u, out, diagnostics, wall,
        cell_effects=cell_effects,
    )


def fit_joint_pair(mediator: Design, outcome: Design, settings: SamplerSettings, *,
                   priors: tuple[Priors, Priors] | None = None, model=None, seed=None,
                   warm: bool = True) -> tuple[EquationFit, EquationFit]:
    """Fit a mediator and an outcome equation (both Gaussian, each with one varying
    slope) whose group effects share one 4 x 4 covariance (:mod:`vagg_bayes.bayes.joint`).

    Returns the two :class:`EquationFit` (the mediator's first). Both carry the joint
    per-group log-likelihood; the outcome's posterior also holds ``path_corr``, the
    correlation across groups of the two varying slopes (``a_j`` and ``b_j``). ``model``
    (a :class:`~vagg_bayes.bayes.joint.JointModel` built for an earlier fit of the same
    pair) is reused: new data update its compiled model, and ``warm`` starts NUTS from
    its first adaptation; ``seed`` as in :meth:`EquationModel.fit`.
    """
    from vagg_bayes.bayes.joint import JointModel

    if priors is None:
        priors = [dataclasses.replace(default_priors(d, "gaussian"), joint=True)
                  for d in (mediator, outcome)]
    if model is None:
        model = JointModel(mediator, outcome, *priors, settings)
    r = model.fit(mediator, outcome, seed=seed, warm=warm)
    C, D = r["shape"]
    J = mediator.n_groups
    ll = r["ll"]
    log_priors = _joint_log_prior(r, priors, (C, D))
    fits = []
    for e, (design, pri) in enumerate(zip((mediator, outcome), priors, strict=True)):
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
                              r["idata"], r["wall"], extra=extra, log_prior=log_priors[e]))
    return fits[0], fits[1]


def _joint_log_prior(r: dict, priors, shape) -> tuple[np.ndarray, np.ndarray]:
    """Log prior density per draw of a jointly fitted pair, split so that the two sum to
    the joint prior: the mediator's coefficients and residual SD; the outcome's, plus the
    shared 4 x 4 group covariance (half-normal SDs, LKJ correlation up to its constant)."""
    from scipy import stats

    pm_, py_ = priors
    parts = []
    for name, pri in (("m", pm_), ("y", py_)):
        lp = stats.norm.logpdf(r[f"theta_{name}"], pri.theta_mu, pri.theta_sd).sum(axis=-1)
        lp = lp + stats.expon.logpdf(r[f"sigma_{name}"], scale=1 / pri.sigma_rate)
        parts.append(lp)
    tau_scale = np.array([pm_.tau_scale] * 2 + [py_.tau_scale] * 2, dtype=float)
    parts[1] = parts[1] + stats.halfnorm.logpdf(r["tau"], scale=tau_scale).sum(axis=-1)
    parts[1] = parts[1] + (pm_.lkj_eta - 1.0) * np.linalg.slogdet(r["corr"])[1]
    return tuple(p.reshape(shape) for p in parts)


def _row_loglik(fit: EquationFit) -> np.ndarray:
    """Pointwise log-likelihood per row, conditional on the group effects: (draws, n)."""
    from vagg_bayes.bayes.loglik import bernoulli_row_loglik, gaussian_row_loglik

    if fit.family == "gaussian":
        return gaussian_row_loglik(fit.design, fit.beta, fit.sigma, fit.group_effects)
    return bernoulli_row_loglik(fit.design, fit.beta, fit.group_effects)
