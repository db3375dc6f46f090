"""Bayesian instrumental variables: first stage and outcome with correlated errors, collapsed.

The model (MATH.md section 7), rows ``i`` of group ``j`` (a city) and time ``t``::

    first stage   v = Z pi + X1 g1 + u1_j + e1,            e1 ~ N(0, s1^2)
    outcome       y = b v + X g2 + u2_j + c_jt + e,        corr(e1, error of y) = rho

``Z`` are the instruments, ``X1`` the first stage's exogenous columns (intercept,
controls, time indicators), ``X`` the outcome's. The joint normal density factorises
as ``p(v) p(y | v)``; given the first stage, the outcome's error has mean linear in the
first-stage error (a control function, exact for the joint Gaussian)::

    y = b v + X g2 + k f + k_b fbar_j + w_j + c'_jt + e',   f = v - Z pi - X1 g1

where ``f`` is the first-stage residual (city effect included), ``fbar_j`` its mean over
the city (Mundlak: the endogeneity may differ between and within cities), ``k`` the
regression of the outcome's error on ``f``, ``w_j`` the city effects left (independent
of ``f`` and ``fbar`` by construction), ``c'_jt`` the group-time effects left (when the
outcome equation has them) and ``e'`` the row residual. Both equations are linear in
their data given the parameters, so both residual vectors are ``d_i' c`` for a data
vector ``d_i`` and a coefficient vector ``c``: the outcome's ``d = [y, X_y, v, Zf, vbar,
Zfbar]`` with ``c = [1, -theta_y, -k, k theta_1, -k_b, k_b theta_1]``. Every quantity of
the collapsed Gaussian likelihood is then a quadratic form in per-cell sums of ``d``
and one total ``sum d d'`` (MATH.md sections 1 and 8, here with group-time cells and
groups only): with ``r_t = S_t' c`` the residual sum of cell ``t`` (``n_t`` rows), ``Q =
c' (sum d d') c``, cell SD ``tc`` and group SD ``tu``::

    a_t   = s^2 / (s^2 + n_t tc^2)
    r'A^-1 r = (Q - sum_t tc^2 / (s^2 + n_t tc^2) r_t^2) / s^2
    log det A = N log s^2 + sum_t log(1 + n_t tc^2 / s^2)
    q_j = sum_{t in j} a_t r_t / s^2,  m_j = sum_{t in j} a_t n_t / s^2
    r'V^-1 r = r'A^-1 r - sum_j q_j^2 / (1 / tu^2 + m_j)
    log det V = log det A + sum_j log(1 + tu^2 m_j)

The cost of a gradient is independent of the number of rows. The first stage is fitted
on one row per group-time cell when the treatment and the instruments are constant
within cells (a city-year measure: a firm-level first stage would count each city-year
once per firm), else on the rows; its group effects are city intercepts.

Reported: ``b`` (the effect), ``rho = k s1 / sqrt(k^2 s1^2 + s_l^2)`` with ``s_l`` the
outcome's residual SD at the first stage's level (the group-time SD for a cell-level
first stage with group-time effects, else the row SD ``s``), ``k`` and ``k_b``.

Assumptions: the instruments move the treatment (relevance), affect the outcome only
through it and share no unblocked cause with it given the controls (exclusion,
independence); the effect is linear and common to all rows (so monotonicity is not
needed); the first stage is linear in the instruments (a linear projection: a nonlinear
true first stage costs efficiency, not consistency, as for 2SLS). The city effects of
the two equations are related only through ``k`` and ``k_b``.

May import: numpy, pandas, pymc, pytensor, vagg_bayes.bayes.design,
vagg_bayes.bayes.priors, vagg_bayes.bayes.sample, vagg_bayes.bayes.diagnostics,
vagg_bayes.bayes.first_stage, vagg_bayes.bayes.fit, vagg_bayes.bayes.numeric,
vagg_bayes.errors, vagg_bayes.spec.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.bayes.design import Design, build_design, resolve_unit_effects
from vagg_bayes.bayes.first_stage import FirstStage, first_stage_strength
from vagg_bayes.bayes.numeric import LOG_2PI
from vagg_bayes.bayes.priors import Priors, default_priors
from vagg_bayes.errors import SpecError
from vagg_bayes.spec import Spec

FIRST_STAGE = "first_stage"


@dataclass(frozen=True, eq=False)
class Blocks:
    """Sufficient statistics of one Gaussian equation whose residual is ``d' c``.

    ``DD`` (p, p) is ``sum_i d_i d_i'``; ``S`` (C, p) the sums of ``d`` per block and ``n``
    (C,) the rows per block, where a block is a group-time cell when ``cells`` is True,
    else a group. ``cell_group`` (C,) is each cell's group code (cells only); ``DD_group``
    (J, p, p) the per-group ``sum d d'`` (for the per-group log-likelihood). Without a
    group, ``S`` and ``n`` are None.
    """

    DD: np.ndarray
    N: int
    S: np.ndarray | None
    n: np.ndarray | None
    cells: bool
    cell_group: np.ndarray | None
    n_groups: int
    DD_group: np.ndarray | None


def blocks(d: np.ndarray, group: np.ndarray | None, cell: np.ndarray | None) -> Blocks:
    """Sufficient statistics of data vectors ``d`` (n, p) by group (and cell) codes."""
    DD = d.T @ d
    if group is None:
        return Blocks(DD, len(d), None, None, False, None, 0, None)
    J = int(group.max()) + 1
    DD_group = np.zeros((J, d.shape[1], d.shape[1]))
    np.add.at(DD_group, group, d[:, :, None] * d[:, None, :])
    if cell is None:
        S = np.zeros((J, d.shape[1]))
        np.add.at(S, group, d)
        return Blocks(DD, len(d), S, np.bincount(group, minlength=J).astype(float), False,
                      None, J, DD_group)
    codes, first = np.unique(cell, return_index=True)
    C = len(codes)
    inv = np.searchsorted(codes, cell)
    S = np.zeros((C, d.shape[1]))
    np.add.at(S, inv, d)
    return Blocks(DD, len(d), S, np.bincount(inv, minlength=C).astype(float), True,
                  group[first], J, DD_group)


def collapsed_loglik_np(b: Blocks, c, s2, tc2=None, tu2=None, *, per_group: bool = False):
    """The collapsed log-likelihood for draws: ``c`` (D, p), ``s2``, ``tc2``, ``tu2`` (D,).

    Returns (D,) or, with ``per_group``, (D, J) (the group's rows together; needs a group).
    """
    c = np.atleast_2d(c)
    s2 = np.asarray(s2, dtype=float).reshape(-1, 1)
    if b.S is None:
        Q = np.einsum("dp,pq,dq->d", c, b.DD, c)
        return -0.5 * (b.N * (LOG_2PI + np.log(s2[:, 0])) + Q / s2[:, 0])
    r = c @ b.S.T  # (D, C)
    n = b.n[None]
    if b.cells and tc2 is not None:
        tc2 = np.asarray(tc2, dtype=float).reshape(-1, 1)
        denom = s2 + n * tc2
        a = s2 / denom
        quad_cells = -(tc2 / denom) * r**2 / s2
        logdet_cells = np.log1p(n * tc2 / s2)
    else:
        a = np.ones_like(r)
        quad_cells = np.zeros_like(r)
        logdet_cells = np.zeros_like(r)
    q = a * r / s2
    m = a * n / s2
    if b.cells:
        J = b.n_groups
        onehot = np.zeros((len(b.n), J))
        onehot[np.arange(len(b.n)), b.cell_group] = 1.0
        q, m = q @ onehot, m @ onehot
        quad_cells, logdet_cells = quad_cells @ onehot, logdet_cells @ onehot
    if tu2 is not None:
        tu2 = np.asarray(tu2, dtype=float).reshape(-1, 1)
        quad_groups = -q**2 / (1.0 / tu2 + m)
        logdet_groups = np.log1p(tu2 * m)
    else:
        quad_groups = logdet_groups = np.zeros_like(q)
    Qj = np.einsum("dp,jpq,dq->dj", c, b.DD_group, c)
    nj = np.bincount(b.cell_group, weights=b.n, minlength=b.n_groups) if b.cells else b.n
    ll = -0.5 * (nj[None] * (LOG_2PI + np.log(s2)) + logdet_cells + logdet_groups
                 + Qj / s2 + quad_cells + quad_groups)
    return ll if per_group else ll.sum(axis=1)


def collapsed_loglik_pt(b: Blocks, c, s2, tc2=None, tu2=None):
    """The same log-likelihood as a PyTensor expression (``c`` (p,), scalars)."""
    import pytensor
    import pytensor.tensor as pt

    def data(x):  # shared, not constants: the compiled code does not depend on the data
        return pytensor.shared(np.asarray(x, dtype=float))

    Q = pt.dot(c, pt.dot(data(b.DD), c))
    if b.S is None:
        return -0.5 * (b.N * (LOG_2PI + pt.log(s2)) + Q / s2)
    r = pt.dot(data(b.S), c)
    n = data(b.n)
    quad = Q / s2
    logdet = b.N * pt.log(s2)
    if b.cells and tc2 is not None:
        denom = s2 + n * tc2
        a = s2 / denom
        quad = quad - pt.sum(tc2 / denom * r**2) / s2
        logdet = logdet + pt.sum(pt.log1p(n * tc2 / s2))
    else:
        a = pt.ones_like(r)
    q = a * r / s2
    m = a * n / s2
    if b.cells:
        onehot = np.zeros((len(b.n), b.n_groups))
        onehot[np.arange(len(b.n)), b.cell_group] = 1.0
        G = data(onehot)
        q, m = pt.dot(q, G), pt.dot(m, G)
    if tu2 is not None:
        quad = quad - pt.sum(q**2 / (1.0 / tu2 + m))
        logdet = logdet + pt.sum(pt.log1p(tu2 * m))
    return -0.5 * (b.N * LOG_2PI + logdet + quad)


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class IVDesigns:
    """The designs of an IV fit and the arrays of its likelihood.

    ``outcome``: the outcome's design (treatment, controls, time indicators; group-time
    effects as the spec or the data decide). ``first``: the first stage's design on the
    rows (instruments, controls, time indicators). ``cell_level``: the first stage is
    fitted on one row per group-time cell. ``fs_y`` (R,), ``fs_Z`` (R, p1) the first
    stage's response and standardised columns on its R rows; ``fs_index`` (n,) each
    outcome row's first-stage row; ``fs_group`` (R,) their group codes (or None).
    """

    spec: Spec
    outcome: Design
    first: Design
    cell_level: bool
    fs_y: np.ndarray
    fs_Z: np.ndarray
    fs_X: np.ndarray
    fs_index: np.ndarray
    fs_group: np.ndarray | None
    strength: FirstStage

    @property
    def instrument_columns(self) -> list[int]:
        return [self.first.terms.index(z) for z in self.spec.instrument]


def _constant_within_cells(panel: pd.DataFrame, spec: Spec, columns) -> bool:
    if not (spec.group and spec.time):
        return False
    by_cell = panel.groupby([spec.group, spec.time], sort=False, observed=True)
    return all(int(by_cell[c].nunique(dropna=False).max()) <= 1 for c in columns)


def iv_designs(panel: pd.DataFrame, spec: Spec, *, reference: IVDesigns | None = None,
               source: str = "data") -> IVDesigns:
    """The designs of an IV fit of a validated panel (``reference``: a refit's first fit).

    Raises
    ------
    SpecError
        When the rows have repeated units and ``unit_effects`` is not ``"none"`` (unit
        effects are not available with an instrument yet).
    DataError
        From :func:`~vagg_bayes.bayes.design.build_design`: a constant instrument, or one
        that is a linear combination of the controls.
    """
    where = f" in {spec.source}" if spec.source else ""
    if reference is None and resolve_unit_effects(panel, spec) != "none":
        raise SpecError(
            f"[variables].instrument{where} is set and {source} has repeated units "
            f"('{spec.unit}' seen in several '{spec.time}' values), but unit effects are not "
            "available with an instrument yet. Set [model].unit_effects = \"none\" (the IV "
            "model then has group and group-time effects only; its intervals ignore the "
            "units' persistence), or remove the instrument."
        )
    outcome = build_design(panel, spec, unit_effects="none", source=source,
                           reference=None if reference is None else reference.outcome)
    first = build_design(panel, spec, response=spec.treatment,
                         regressors=[*spec.instrument, *spec.controls], varying_slope=False,
                         unit_effects="none", group_time=False, source=source,
                         reference=None if reference is None else reference.first)
    cell_level = (reference.cell_level if reference is not None else
                  _constant_within_cells(panel, spec, [spec.treatment, *spec.instrument]))
    n = len(panel)
    if cell_level:
        cell = panel.groupby([spec.group, spec.time], sort=True, observed=True).ngroup()
        fs_index = cell.to_numpy(dtype=np.int64)
        R = int(fs_index.max()) + 1
        counts = np.bincount(fs_index, minlength=R).astype(float)

        def mean(a):
            out = np.zeros((R, *a.shape[1:]))
            np.add.at(out, fs_index, a)
            return out / counts.reshape(-1, *[1] * (a.ndim - 1))

        fs_y, fs_Z, fs_X = mean(first.y), mean(first.Z), mean(first.X)
        fs_group = np.zeros(R, dtype=np.int64)
        fs_group[fs_index] = first.group_codes
        level = f"{spec.group} x {spec.time} cells"
    else:
        fs_index = np.arange(n)
        fs_y, fs_Z, fs_X = first.y, first.Z, first.X
        fs_group = first.group_codes
        level = "rows"
    k = [first.terms.index(z) for z in spec.instrument]
    rest = [j for j in range(first.p) if j not in k]
    strength = first_stage_strength(fs_y, fs_X[:, k], fs_X[:, rest],
                                    instruments=spec.instrument, clusters=fs_group,
                                    cluster=spec.group, level=level)
    return IVDesigns(spec, outcome, first, cell_level, fs_y, fs_Z, fs_X, fs_index, fs_group,
                     strength)


def _outcome_blocks(ivd: IVDesigns) -> tuple[Blocks, int]:
    """Blocks of the outcome's data vector ``[y, Z_y, f-data, fbar-data]``; returns them and
    the number of first-stage columns."""
    out = ivd.outcome
    fs = np.column_stack([ivd.fs_y, ivd.fs_Z])  # (R, 1 + p1): f = fs @ [1, -theta_1]
    parts = [out.y[:, None], out.Z, fs[ivd.fs_index]]
    if ivd.fs_group is not None:
        J = int(ivd.fs_group.max()) + 1
        sums = np.zeros((J, fs.shape[1]))
        np.add.at(sums, ivd.fs_group, fs)
        fbar = sums / np.bincount(ivd.fs_group, minlength=J)[:, None]
        parts.append(fbar[out.group_codes])
    d = np.column_stack(parts)
    cell = None
    if out.time_codes is not None:
        cell = out.group_codes * (int(out.time_codes.max()) + 1) + out.time_codes
    return blocks(d, out.group_codes, cell), fs.shape[1]


def _first_blocks(ivd: IVDesigns) -> Blocks:
    return blocks(np.column_stack([ivd.fs_y, ivd.fs_Z]), ivd.fs_group, None)


# ----------------------------------------------------------------------------- model
@dataclass(frozen=True)
class IVPriors:
    """Priors of both equations (standardised regressors, data-scale responses, as
    :class:`~vagg_bayes.bayes.priors.Priors`) and of the control-function slopes:
    ``k, k_b ~ Normal(0, cf_sd)`` with ``cf_sd = 2.5 sd(y) / sd(v)``."""

    first: Priors
    outcome: Priors
    cf_sd: float


def default_iv_priors(ivd: IVDesigns, prior_scale: float = 1.0) -> IVPriors:
    def scaled(p: Priors) -> Priors:
        if prior_scale == 1.0:
            return p
        return dataclasses.replace(p, theta_sd=p.theta_sd * prior_scale,
                                   tau_scale=p.tau_scale * prior_scale,
                                   sigma_rate=p.sigma_rate / prior_scale)

    first = scaled(default_priors(ivd.first, "gaussian"))
    outcome = scaled(default_priors(ivd.outcome, "gaussian"))
    sd_v = float(np.std(ivd.first.y)) or 1.0
    sd_y = float(np.std(ivd.outcome.y)) or 1.0
    return IVPriors(first, outcome, 2.5 * sd_y / sd_v * prior_scale)


def build_iv_model(ivd: IVDesigns, priors: IVPriors):
    """The PyMC model, group and group-time effects integrated out.

    Free variables: ``theta_1_white`` (the first stage's coefficients ``theta_1`` on
    standardised columns, whitened: see :func:`_whitened`), ``sigma_1``, ``tau_1`` (with a
    group); ``theta_y_white`` (``theta_y``), ``a`` (``= b + k``, flat: the prior is
    ``k ~ Normal(0, cf_sd)``), ``k_b`` (with a group), ``sigma``, ``tau_y`` (with a
    group), ``tau_cell`` (with group-time effects). Deterministics ``theta_1``,
    ``theta_y``; the potential ``loglik`` is both equations' collapsed log-likelihood.
    """
    import pymc as pm

    b1 = _first_blocks(ivd)
    by, _ = _outcome_blocks(ivd)
    out = ivd.outcome
    grouped = ivd.fs_group is not None
    cells = out.time_codes is not None
    start = _start(ivd)
    coords = {"term_1": list(ivd.first.terms), "term_y": list(out.terms)}
    with pm.Model(coords=coords) as model:
        p1, py = priors.first, priors.outcome
        theta_1 = _whitened("theta_1", ivd.fs_Z, p1, start["theta_1"], "term_1")
        sigma_1 = pm.Exponential("sigma_1", lam=p1.sigma_rate, initval=start["sigma_1"])
        tau_1 = pm.HalfNormal("tau_1", sigma=p1.tau_scale) if grouped else None
        theta_y = _whitened("theta_y", out.Z, py, start["theta_y"], "term_y")
        # The effect b and k are strongly correlated a posteriori (y = b v + k f with f a
        # part of v); sample a = b + k, the coefficient of the residual f, which is nearly
        # independent of b (the fitted and the residual part of v are orthogonal), and
        # put the prior on k = a - b.
        ti = out.treatment_index
        b_data = theta_y[ti] / out.x_sd[ti]
        a = pm.Flat("a", initval=start["k"] + start["theta_y"][ti] / out.x_sd[ti])
        k = a - b_data
        pm.Potential("k_prior", pm.logp(pm.Normal.dist(0.0, priors.cf_sd), k))
        k_b = pm.Normal("k_b", 0.0, priors.cf_sd) if grouped else None
        sigma = pm.Exponential("sigma", lam=py.sigma_rate, initval=start["sigma"])
        tau_y = pm.HalfNormal("tau_y", sigma=py.tau_scale) if grouped else None
        tau_cell = pm.HalfNormal("tau_cell", sigma=py.tau_scale) if cells else None
        import pytensor.tensor as pt

        c1 = pt.concatenate([pt.ones(1), -theta_1])
        parts = [pt.ones(1), -theta_y, -k * c1]
        if grouped:
            parts.append(-k_b * c1)
        c_y = pt.concatenate(parts)
        ll = (collapsed_loglik_pt(b1, c1, sigma_1**2, None, _sq(tau_1))
              + collapsed_loglik_pt(by, c_y, sigma**2, _sq(tau_cell), _sq(tau_y)))
        pm.Potential("loglik", ll)
    model.iv_blocks = (b1, by)
    return model


def _sq(x):
    """A variance from an SD, None kept (an effect the model does not have)."""
    return None if x is None else x**2


def _whitened(name: str, Z: np.ndarray, priors: Priors, start: np.ndarray, dims: str):
    """Coefficients ``theta`` with their Normal prior, sampled as ``gamma = R theta`` (flat),
    ``R`` the triangular factor of ``Z / sqrt(n)``: the regressors' correlations (cell
    means of firm controls and time indicators, say) are taken out of the sampler's way."""
    import pymc as pm
    import pytensor.tensor as pt

    R = np.linalg.qr(Z / np.sqrt(len(Z)), mode="r")
    R = R * np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]
    gamma = pm.Flat(f"{name}_white", shape=Z.shape[1], initval=R @ start)
    theta = pm.Deterministic(name, pt.dot(pt.as_tensor_variable(np.linalg.inv(R)), gamma),
                             dims=dims)
    pm.Potential(f"{name}_prior", pm.logp(
        pm.Normal.dist(mu=priors.theta_mu, sigma=priors.theta_sd), theta).sum())
    return theta


def _start(ivd: IVDesigns) -> dict:
    """Least-squares starting values: first stage, then the control-function regression."""
    theta_1, *_ = np.linalg.lstsq(ivd.fs_Z, ivd.fs_y, rcond=None)
    f = ivd.fs_y - ivd.fs_Z @ theta_1
    A = np.column_stack([ivd.outcome.Z, f[ivd.fs_index]])
    coef, *_ = np.linalg.lstsq(A, ivd.outcome.y, rcond=None)
    resid = ivd.outcome.y - A @ coef
    return {"theta_1": theta_1, "sigma_1": max(float(np.std(f)), 1e-6),
            "theta_y": coef[:-1], "k": float(coef[-1]),
            "sigma": max(float(np.std(resid)), 1e-6)}


@dataclass(frozen=True, eq=False)
class IVDraws:
    """Flattened posterior draws (D leading axis), data scale where it says so."""

    beta_1: np.ndarray  # (D, p1) first stage, data scale
    beta_y: np.ndarray  # (D, py) outcome, data scale
    sigma_1: np.ndarray
    sigma: np.ndarray
    tau_1: np.ndarray | None
    tau_y: np.ndarray | None
    tau_cell: np.ndarray | None
    k: np.ndarray
    k_b: np.ndarray | None
    rho: np.ndarray
    loglik: np.ndarray | None  # (D, J) or (D,) per group / total, both equations
    shape: tuple[int, int]
    idata: object
    wall: float


def sample_iv(ivd: IVDesigns, priors: IVPriors, settings, *, loglik: bool = True) -> IVDraws:
    """Sample the IV model; returns its draws on the data scale."""
    from vagg_bayes.bayes.sample import ChainSampler, run_sampler

    model = build_iv_model(ivd, priors)
    if settings.sampler == "nuts":  # PyMC's NUTS, a dense mass matrix in the warm stage
        sampler = ChainSampler(model, target_accept=settings.target_accept)
        idata, wall, _ = sampler.run(settings, settings.random_seed)
    else:
        idata, wall = run_sampler(model, settings)
    post = idata.posterior
    C, D = post.sizes["chain"], post.sizes["draw"]

    def flat(name):
        if name not in post:
            return None
        x = np.asarray(post[name], dtype=float)
        return x.reshape(C * D, *x.shape[2:])

    theta_1, theta_y = flat("theta_1"), flat("theta_y")
    sigma_1, sigma = flat("sigma_1"), flat("sigma")
    ti = ivd.outcome.treatment_index
    k = flat("a") - theta_y[:, ti] / ivd.outcome.x_sd[ti]
    tau_1, tau_y, tau_cell, k_b = flat("tau_1"), flat("tau_y"), flat("tau_cell"), flat("k_b")
    s_level = tau_cell if (ivd.cell_level and tau_cell is not None) else sigma
    rho = k * sigma_1 / np.sqrt((k * sigma_1) ** 2 + s_level**2)
    ll = None
    if loglik:
        b1, by = model.iv_blocks
        ones = np.ones((C * D, 1))
        c1 = np.column_stack([ones, -theta_1])
        parts = [ones, -theta_y, -k[:, None] * c1]
        if k_b is not None:
            parts.append(-k_b[:, None] * c1)
        c_y = np.column_stack(parts)
        grouped = ivd.fs_group is not None
        ll = (collapsed_loglik_np(b1, c1, sigma_1**2, None, _sq(tau_1), per_group=grouped)
              + collapsed_loglik_np(by, c_y, sigma**2, _sq(tau_cell), _sq(tau_y),
                                    per_group=grouped))
    return IVDraws(
        beta_1=theta_1 @ ivd.first.transform.T, beta_y=theta_y @ ivd.outcome.transform.T,
        sigma_1=sigma_1, sigma=sigma, tau_1=tau_1, tau_y=tau_y, tau_cell=tau_cell, k=k,
        k_b=k_b, rho=rho, loglik=ll, shape=(C, D), idata=idata, wall=wall)


def fit_iv(ivd: IVDesigns, priors: IVPriors, settings, *, loglik: bool = True) -> dict:
    """Fit and return ``{"first_stage": EquationFit, "outcome": EquationFit}``.

    The outcome's fit carries the effect (its treatment coefficient), the per-group
    log-likelihood of both equations together and the extra terms ``rho``,
    ``control_function`` (``k``) and ``control_function(mean by <group>)`` (``k_b``);
    group-time effects' SD as ``sd(<group>:<time>)``.
    """
    import arviz as az
    import xarray as xr

    from vagg_bayes.bayes.diagnostics import diagnose
    from vagg_bayes.bayes.fit import EquationFit

    r = sample_iv(ivd, priors, settings, loglik=loglik)
    C, D = r.shape
    spec = ivd.spec
    chain_draw = {"chain": r.idata.posterior.chain, "draw": r.idata.posterior.draw}

    def cd(x):
        return None if x is None else x.reshape(C, D, *x.shape[1:])

    fits = {}
    for name, design, beta, sigma, tau, pri in (
        (FIRST_STAGE, ivd.first, r.beta_1, r.sigma_1, r.tau_1, priors.first),
        ("outcome", ivd.outcome, r.beta_y, r.sigma, r.tau_y, priors.outcome),
    ):
        post = {"beta": (("chain", "draw", "term"), cd(beta)),
                "sigma": (("chain", "draw"), cd(sigma))}
        coords = {**chain_draw, "term": list(design.terms)}
        if tau is not None:
            post["group_sd"] = (("chain", "draw", "varying"), cd(tau)[..., None])
            coords["varying"] = ["Intercept"]
        extra_names, extra = [], []
        if name == "outcome":
            extra_names.append("rho")
            extra.append(r.rho)
            extra_names.append("control_function")
            extra.append(r.k)
            if r.k_b is not None:
                extra_names.append(f"control_function(mean by {spec.group})")
                extra.append(r.k_b)
            if r.tau_cell is not None:
                extra_names.append(f"sd({spec.group}:{spec.time})")
                extra.append(r.tau_cell)
        if extra:
            post["extra"] = (("chain", "draw", "extra_term"),
                             cd(np.stack(extra, axis=-1)))
            coords["extra_term"] = extra_names
        groups = {"posterior": xr.Dataset(post, coords=coords),
                  "sample_stats": r.idata.sample_stats}
        if name == "outcome" and r.loglik is not None:
            if r.loglik.ndim == 2:
                labels = [str(g) for g in design.group_labels]
                groups["log_likelihood"] = xr.Dataset(
                    {"y": (("chain", "draw", "group"), cd(r.loglik))},
                    coords={**chain_draw, "group": labels},
                    attrs={"y": "per group, group effects integrated out; first stage and "
                                "outcome together"})
        idata = az.InferenceData(**groups)
        diagnostics = diagnose(idata, ["beta", "sigma", "group_sd", "extra"])
        fits[name] = EquationFit(
            design=design, family="gaussian", priors=pri, beta=cd(beta), sigma=cd(sigma),
            group_sd=None if tau is None else cd(tau)[..., None], group_corr=None,
            group_effects=None, idata=idata, diagnostics=diagnostics, wall_time=r.wall)
    return fits
