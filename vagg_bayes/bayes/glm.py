"""Hierarchical logistic regression (Bernoulli outcome), the group effects sampled.

A Bernoulli likelihood cannot be collapsed, so the group effects stay in the model.
Three exact reparameterisations make it mix at any group size (none changes the
posterior; ``tests/bayes/test_glm.py`` checks the density against the textbook model):

- **Partial centring per group and coefficient** (``"auto"``). Coordinate ``a`` of
  group ``j`` is sampled as ``F = lam mean + L_aa^lam z`` (``b = mean + L_aa z``,
  ``z ~ N(0, 1)``), with ``lam = I tau^2 / (1 + I tau^2)``: ``I`` is the
  coefficient's information in the group (``n_j p (1 - p)`` for the intercept,
  ``p (1 - p)`` times the within-group sum of squares for a slope) and ``tau`` a
  conservative estimate of its group SD (one SD below the prefit's mode on the log
  scale). ``lam = 1`` is the centred form (right for well-informed groups), ``lam =
  0`` the non-centred one (right for weakly informed groups and SDs near zero); the
  weight in between is the group data's share of its posterior mean, which makes
  ``F`` nearly independent of the population parameters (Papaspiliopoulos, Roberts &
  Skold 2003; Gorinova, Moore & Hoffman 2020). ``"centred"`` and ``"noncentred"``
  force ``lam = 1`` or ``0``.
- **Between and within.** Every population column is split into its group means,
  which enter the mean of the group intercepts, and the rows' within-group
  deviations (a city-level control has none): a well-informed intercept then does not
  move with the coefficients of the city-level part of a control, the ridge that made
  a region indicator beside 60 city intercepts mix slowly.
- **Whitening.** Every free parameter is an affine function of the sampled vector
  ``w`` (``v = shift + scale w``) built from a cheap approximation of the posterior: a pooled
  logistic fit, one Newton solve per group for its coefficients, and the mode and
  curvature of the group SDs' approximate marginal likelihood
  (:func:`_profile_log_tau`). NUTS then starts in the bulk with a mass matrix that is
  nearly right, so warm-up is short.

With ``L`` the Cholesky factor of the group covariance ``S`` the mean of the slope
coordinate is conditional on the intercept's ``z``: ``theta_1 + L_10 z_0``.

Speed at many rows: with the default sampler the log-likelihood and its gradient come
from one NumPy operation (:class:`LogitLoglik`): SIMD ``exp``/``log``, rows sorted by
group so that group sums are contiguous segment sums; and PyMC's NUTS evaluates the
model's compiled twin of the whole log posterior (:mod:`vagg_bayes.bayes.glm_kernel`,
``model.fast_logp_dlogp``) instead of the graph. nutpie and NumPyro compile the model
themselves, so for them the same likelihood is written as a PyTensor graph.

May import: numpy, pymc, pytensor, vagg_bayes.bayes.design, vagg_bayes.bayes.priors,
vagg_bayes.bayes.numeric, vagg_bayes.bayes.diagnostics, vagg_bayes.bayes.glm_kernel.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np

from vagg_bayes.bayes.design import Design
from vagg_bayes.bayes.diagnostics import FallbackWarning
from vagg_bayes.bayes.numeric import softplus, softplus_sigmoid
from vagg_bayes.bayes.priors import Priors

__all__ = [
    "PARAMETERIZATIONS", "build_logit_model", "centred_mask", "centring_weights",
    "group_cholesky", "group_level_columns", "group_means", "softplus",
]  # softplus: re-exported from vagg_bayes.bayes.numeric (vagg_bayes.bayes.fit imports it)

PARAMETERIZATIONS = ("auto", "centred", "noncentred")
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


def centred_mask(
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
        return np.full((design.n_groups, q), parameterization == "centred")
    sd = np.full(q, _TYPICAL_GROUP_SD) if group_sd is None else np.asarray(group_sd)
    return _information(design, list(design.varying)) * sd**2 > 1.0


def centring_weights(
    design: Design, parameterization: str = "auto", group_sd: np.ndarray | None = None
) -> np.ndarray:
    """Partial centring weights ``lambda`` (J, q) in [0, 1]: 1 centred, 0 non-centred.

    ``"auto"``: ``lambda = I tau^2 / (1 + I tau^2)`` with ``I`` the coefficient's
    information in the group and ``tau = group_sd`` -- the weight of the group's own
    data in its posterior mean, which makes the sampled coordinate and the population
    parameters nearly independent in the normal approximation (Papaspiliopoulos,
    Roberts & Skold 2003; Gorinova, Moore & Hoffman 2020). It exceeds 1/2 exactly where
    :func:`centred_mask` says centred.
    """
    mask = centred_mask(design, parameterization, group_sd)
    if parameterization != "auto":
        return mask.astype(float)
    q = len(design.varying)
    sd = np.full(q, _TYPICAL_GROUP_SD) if group_sd is None else np.asarray(group_sd)
    it2 = _information(design, list(design.varying)) * sd**2
    return it2 / (1.0 + it2)


def group_level_columns(design: Design) -> list[int]:
    """Population columns that are constant within every group (city-level controls).

    Their coefficients enter the mean of the group intercepts (hierarchical centring)
    instead of every row's linear predictor: the likelihood of a centred intercept then
    does not move with them, which removes the ridge between a city-level control and
    the city intercepts. The model is the same.
    """
    if not design.varying or design.varying[0] != 0:
        return []
    order = np.argsort(design.group_codes, kind="stable")
    counts = np.bincount(design.group_codes, minlength=design.n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    Zs = design.Z[order]
    out = []
    for k in range(1, design.p):
        if k in design.varying:
            continue
        col = Zs[:, k]
        if np.array_equal(np.minimum.reduceat(col, starts), np.maximum.reduceat(col, starts)):
            out.append(k)
    return out


def group_means(design: Design, cols: list[int]) -> np.ndarray:
    """Mean of each column of ``cols`` (standardised) in each group, (J, len(cols))."""
    counts = np.bincount(design.group_codes, minlength=design.n_groups).astype(float)
    out = np.empty((design.n_groups, len(cols)))
    for i, k in enumerate(cols):
        out[:, i] = np.bincount(design.group_codes, weights=design.Z[:, k],
                                minlength=design.n_groups) / counts
    return out


# --------------------------------------------------------------------------- likelihood


class _Rows:
    """The row-level arrays of a logistic regression with group coefficients.

    Rows are stored sorted by group (the log-likelihood does not depend on their
    order), so that a group coefficient reaches its rows by ``repeat`` and a gradient
    is a segment sum (``add.reduceat``): both contiguous and several times faster than
    a gather by group code and ``bincount``. Products with the design use ``einsum`` on
    a Fortran-ordered copy: no BLAS call, whose threads cost more than they save on
    these thin matrices.
    """

    def __init__(self, design: Design, rest: list[int], varying: list[int], codes: np.ndarray,
                 rest_means: np.ndarray | None = None, slope_means: np.ndarray | None = None,
                 cell_codes: np.ndarray | None = None):
        order = np.argsort(codes, kind="stable")
        self.J = design.n_groups
        self.counts = np.bincount(codes, minlength=self.J)
        if np.any(self.counts == 0):
            raise ValueError("every group needs at least one row")
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.y = np.ascontiguousarray(design.y[order], dtype=float)
        Z_rest = design.Z[order][:, rest]
        if rest and rest_means is not None:  # within-group deviations
            Z_rest = Z_rest - rest_means[codes[order]]
        self.Z_rest = np.asfortranarray(Z_rest) if rest else None
        self.W = [None if (k == 0 and np.all(design.Z[:, 0] == 1.0))
                  else np.ascontiguousarray(design.Z[order, k]) for k in varying]
        if slope_means is not None:  # slopes on within-group deviations of their column
            for a in range(1, len(self.W)):
                self.W[a] = self.W[a] - slope_means[codes[order]]
        self.codes = np.ascontiguousarray(codes[order], dtype=np.intp)
        # group-time cells (nested in the groups): each row's cell, in stored order
        self.cell_codes = (None if cell_codes is None
                           else np.ascontiguousarray(cell_codes[order], dtype=np.intp))
        self.n_cells = 0 if cell_codes is None else int(cell_codes.max()) + 1

    def group_sum(self, x: np.ndarray) -> np.ndarray:
        """Sum of ``x`` (rows in stored order) within each group, (J,)."""
        return np.add.reduceat(x, self.starts)

    def eta(self, theta_rest: np.ndarray, coef: np.ndarray,
            cell: np.ndarray | None = None) -> np.ndarray:
        eta = (np.einsum("ij,j->i", self.Z_rest, theta_rest) if self.Z_rest is not None
               else np.zeros(len(self.y)))
        for a, W in enumerate(self.W):
            g = np.repeat(coef[:, a], self.counts)
            if W is not None:
                g *= W
            eta += g
        if cell is not None and self.cell_codes is not None:
            eta += cell[self.cell_codes]
        return eta

    def loglik_grad(self, theta_rest: np.ndarray, coef: np.ndarray,
                    cell: np.ndarray | None = None):
        eta = self.eta(theta_rest, coef, cell)
        log1p_exp, sigmoid = softplus_sigmoid(eta)
        logp = float(np.einsum("i,i->", self.y, eta) - log1p_exp.sum())
        r = np.subtract(self.y, sigmoid, out=sigmoid)
        g_theta = (np.einsum("ij,i->j", self.Z_rest, r) if self.Z_rest is not None
                   else np.zeros(0))
        g_coef = np.empty((self.J, len(self.W)))
        for a, W in enumerate(self.W):
            g_coef[:, a] = self.group_sum(r if W is None else r * W)
        g_cell = (np.bincount(self.cell_codes, weights=r, minlength=self.n_cells)
                  if self.cell_codes is not None else np.zeros(0))
        return logp, g_theta, g_coef, g_cell


@functools.cache
def _make_loglik_op():
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class LogitLoglik(Op):
        """Log-likelihood of a logistic regression, with its gradient as extra outputs.

        Inputs ``theta_rest`` (population coefficients of the non-varying columns),
        ``coef`` (J, q) (every group's coefficients of the varying columns) and ``cell``
        (the group-time cell effects; empty without them); outputs the log-likelihood
        and its gradient with respect to the three. The gradient of the first output
        reuses the others, so one call computes all. Instances compare by identity
        (each holds its own data).
        """

        def __init__(self, rows: _Rows):
            self.rows = rows

        def make_node(self, theta_rest, coef, cell):
            theta_rest = pt.as_tensor_variable(theta_rest).astype("float64")
            coef = pt.as_tensor_variable(coef).astype("float64")
            cell = pt.as_tensor_variable(cell).astype("float64")
            return Apply(self, [theta_rest, coef, cell],
                         [pt.dscalar(), pt.dvector(), pt.dmatrix(), pt.dvector()])

        def perform(self, node, inputs, outputs):
            theta_rest, coef, cell = inputs
            logp, g_theta, g_coef, g_cell = self.rows.loglik_grad(
                theta_rest, coef, cell if cell.size else None)
            outputs[0][0] = np.asarray(logp)
            outputs[1][0] = g_theta
            outputs[2][0] = g_coef
            outputs[3][0] = g_cell

        def grad(self, inputs, output_grads):
            for g in output_grads[1:]:
                if not isinstance(g.type, DisconnectedType):
                    raise NotImplementedError("only the log-likelihood output is differentiable")
            _, g_theta, g_coef, g_cell = self(*inputs)
            return [output_grads[0] * g_theta, output_grads[0] * g_coef,
                    output_grads[0] * g_cell]

        def __str__(self):
            return "LogitLoglik"

    return LogitLoglik


# --------------------------------------------------------------------------- starting point


def _newton_pooled(design: Design, priors: Priors, iterations: int = 30):
    """Posterior mode and Hessian of the pooled logistic regression (no group effects).

    If Newton's steps leave the finite numbers (an extreme regressor scale; a separating
    regressor under a very wide prior), the prior mean and precision are returned with
    a :class:`~vagg_bayes.bayes.diagnostics.FallbackWarning`.
    """
    Z, y = design.Z, design.y
    prec = 1.0 / np.asarray(priors.theta_sd, dtype=float) ** 2
    mu = np.asarray(priors.theta_mu, dtype=float)
    theta = mu.copy()
    hessian = np.diag(prec)
    for _ in range(iterations):
        with np.errstate(over="ignore", invalid="ignore"):  # a failure is caught below
            _, prob = softplus_sigmoid(Z @ theta)
            grad = Z.T @ (y - prob) - prec * (theta - mu)
            hessian = (Z * (prob * (1 - prob))[:, None]).T @ Z + np.diag(prec)
            try:
                step = np.linalg.solve(hessian, grad)
            except np.linalg.LinAlgError:
                step = np.full_like(theta, np.nan)
            theta = theta + step
        if not np.all(np.isfinite(theta)):
            warnings.warn(
                "The pooled logistic fit that starts the sampler and scales its whitening "
                "failed (non-finite coefficients); it starts from the prior mean instead, "
                "so warm-up may be slow and the chains may not mix. Remedy: look for a "
                "regressor with an extreme scale or one that separates the outcome "
                "perfectly (drop or recode it), or give the coefficients tighter priors.",
                FallbackWarning, stacklevel=3)
            return mu.copy(), np.diag(prec)
        if np.max(np.abs(step)) < 1e-8:
            break
    return theta, hessian


def _group_newton(rows: _Rows, theta_rest, b0, prior_mean, prior_prec, iterations=8):
    """Mode and Hessian of every group's coefficients given ``theta_rest`` and a normal prior.

    ``b0`` (J, q) start, ``prior_mean`` (q,) or (J, q), ``prior_prec`` (q, q) or
    (J, q, q). Vectorised over groups with segment sums; returns the modes (J, q) and
    the Hessians (J, q, q).
    """
    J, q = b0.shape
    offset = rows.Z_rest @ theta_rest if rows.Z_rest is not None else np.zeros(len(rows.y))
    Ws = [np.ones(len(rows.y)) if W is None else W for W in rows.W]
    mode = b0.copy()
    hessian = np.broadcast_to(prior_prec, (J, q, q)).copy()
    for _ in range(iterations):
        eta = offset.copy()
        for a in range(q):
            eta += np.repeat(mode[:, a], rows.counts) * Ws[a]
        _, prob = softplus_sigmoid(eta)
        r, wt = rows.y - prob, prob * (1 - prob)
        g = np.stack([rows.group_sum(r * Ws[a]) for a in range(q)], axis=1)
        g -= np.einsum("ja,jab->jb", mode - prior_mean, np.broadcast_to(prior_prec, (J, q, q)))
        hessian = np.broadcast_to(prior_prec, (J, q, q)).copy()
        for a in range(q):
            for k in range(a + 1):
                h = rows.group_sum(wt * Ws[a] * Ws[k])
                hessian[:, a, k] += h
                if k != a:
                    hessian[:, k, a] += h
        step = np.linalg.solve(hessian, g[..., None])[..., 0]
        step = np.clip(step, -2.0, 2.0)  # groups with separation: keep the start sane
        mode = mode + step
        if np.max(np.abs(step)) < 1e-6:
            break
    return mode, hessian


def group_cholesky(sd: np.ndarray, corr: float, xbar: np.ndarray | None) -> np.ndarray:
    """Per-group Cholesky factors (J, q, q) of the covariance of ``(c_j, b_j1)``.

    With a varying slope the likelihood uses the slope column's within-group deviations,
    so the sampled intercept is ``c_j = b_j0 + xbar_j b_j1`` and its covariance with the
    slope is ``T_j S T_j'``, ``T_j = [[1, xbar_j], [0, 1]]`` (unit determinant).
    """
    q = len(sd)
    if q == 1:
        return np.full((1 if xbar is None else len(xbar), 1, 1), sd[0])
    S = np.array([[sd[0] ** 2, corr * sd[0] * sd[1]], [corr * sd[0] * sd[1], sd[1] ** 2]])
    T = np.zeros((len(xbar), 2, 2))
    T[:, 0, 0] = T[:, 1, 1] = 1.0
    T[:, 0, 1] = xbar
    return np.linalg.cholesky(T @ S @ np.swapaxes(T, 1, 2))


def _profile_log_tau(b_hat, h, X, tau_scale):
    """Posterior mode and SD of ``log tau`` for one group coordinate, by a normal approximation.

    Group ``j``'s data estimate ``b_hat_j`` has precision ``h_j``; then approximately
    ``b_hat_j ~ N(X_j gamma, tau^2 + 1 / h_j)``. The mean coefficients ``gamma`` are
    profiled out (weighted least squares) over a grid of ``log tau``, and the
    ``HalfNormal(tau_scale)`` prior with the Jacobian of ``log tau`` is added, so the mode
    exists even where the data say ``tau`` is near zero. The SD comes from the curvature
    at the mode. Returns ``(tau, sd_log_tau, gamma)``.
    """
    grid = np.linspace(np.log(0.01), np.log(5.0 * tau_scale), 241)
    ll = np.empty(grid.size)
    gammas = []
    for i, lt in enumerate(grid):
        wt = 1.0 / (np.exp(2 * lt) + 1.0 / h)
        XtW = X.T * wt
        gamma = np.linalg.lstsq(XtW @ X, XtW @ b_hat, rcond=None)[0]
        r = b_hat - X @ gamma
        ll[i] = 0.5 * np.sum(np.log(wt) - wt * r**2) - 0.5 * np.exp(2 * lt) / tau_scale**2 + lt
        gammas.append(gamma)
    i = int(np.clip(np.argmax(ll), 1, grid.size - 2))
    step = grid[1] - grid[0]
    curv = (ll[i + 1] - 2 * ll[i] + ll[i - 1]) / step**2
    sd = 1.0 / np.sqrt(-curv) if curv < 0 else 1.0
    return float(np.exp(grid[i])), float(np.clip(sd, 0.03, 1.5)), gammas[i]


@dataclass(frozen=True, eq=False)
class _Columns:
    """How the population columns of ``design.Z`` enter the model (column indices).

    Attributes
    ----------
    varying : list of int
        Columns with group coefficients: the intercept, then the varying slope if any.
    group_level : list of int
        Columns constant within groups (:func:`group_level_columns`): they enter the
        mean of the group intercepts.
    row_level : list of int
        The other population columns: the rows carry their within-group deviations.
    group_level_values : ndarray (J, len(group_level))
        The group-level columns' value in each group.
    row_level_means : ndarray (J, len(row_level))
        The row-level columns' mean in each group (they enter the intercepts' mean).
    slope_means : ndarray (J,) or None
        The varying slope column's mean in each group (``xbar``; the group coefficients
        are then ``(c_j, b_j1)`` with ``c_j = b_j0 + xbar_j b_j1``, see
        :func:`group_cholesky`); None without a varying slope.
    """

    varying: list[int]
    group_level: list[int]
    row_level: list[int]
    group_level_values: np.ndarray
    row_level_means: np.ndarray
    slope_means: np.ndarray | None

    @classmethod
    def of(cls, design: Design) -> _Columns:
        varying = list(design.varying)
        group_level = group_level_columns(design)
        row_level = [k for k in range(design.p) if k not in varying and k not in group_level]
        slope_means = (group_means(design, [varying[1]])[:, 0] if len(varying) == 2
                       else None)
        return cls(varying, group_level, row_level, group_means(design, group_level),
                   group_means(design, row_level), slope_means)


@dataclass(frozen=True, eq=False)
class Prefit:
    """Quick approximation of the posterior (:func:`_prefit`): start and scales of whitening.

    Attributes
    ----------
    theta : ndarray (p,)
        Population coefficients (standardised) at the approximate mode.
    row_hessian : ndarray (r, r)
        Hessian of the row-level coefficients given the group coefficients (prior
        included).
    group_mode : ndarray (J, q)
        Every group's coefficients ``(c_j, b_j1)`` at their mode given ``theta``.
    group_hessian : ndarray (J, q, q)
        Their Hessian (prior included): ``inv`` of it approximates their posterior
        covariance.
    tau : ndarray (q,)
        Group SDs at the mode of their approximate marginal likelihood.
    log_tau_sd : ndarray (q,)
        Approximate posterior SDs of ``log tau``.
    corr : float
        Correlation of the group intercept and slope (0 without a varying slope).
    logit_corr_sd : float
        Approximate posterior SD of ``logit((1 + corr) / 2)`` (0 without a varying
        slope).
    intercept_mean_cov : ndarray (1 + g, 1 + g)
        Approximate covariance of the coefficients of the group intercepts' mean,
        ``[theta_0, theta[group_level]]``.
    group_mean : ndarray (J, q)
        Every group's prior mean of ``(c_j, b_j1)`` at ``theta``.
    """

    theta: np.ndarray
    row_hessian: np.ndarray
    group_mode: np.ndarray
    group_hessian: np.ndarray
    tau: np.ndarray
    log_tau_sd: np.ndarray
    corr: float
    logit_corr_sd: float
    intercept_mean_cov: np.ndarray
    group_mean: np.ndarray


@dataclass(frozen=True, eq=False)
class _Whitening:
    """The affine map ``v = shift + scale w`` of :func:`_whitening`.

    Attributes
    ----------
    pop_shift : ndarray (n_pop,)
        Population block: ``theta``, ``log tau`` and ``logit((1 + corr) / 2)``.
    pop_scale : ndarray (n_pop, n_pop)
    coord_mean : ndarray (J, q)
        Mean of every group's sampled coordinates ``F``.
    coord_chol : ndarray (J, q, q)
        Lower-triangular Cholesky factor of their covariance, per group.
    """

    pop_shift: np.ndarray
    pop_scale: np.ndarray
    coord_mean: np.ndarray
    coord_chol: np.ndarray


def _prefit(design: Design, priors: Priors, rows: _Rows, cols: _Columns) -> Prefit:
    """Quick approximation of the posterior: the starting point and scales of whitening.

    One Newton solve per group under a wide prior gives each group's data estimate and
    precision; :func:`_profile_log_tau` turns them into the mode and SD of every group
    SD (the group-level columns regressed out of the intercepts); a second Newton solve
    under that prior gives the group modes. ``rows`` holds the within-group deviations
    of the row-level columns, ``cols`` their group means (and those of the varying
    slope's column: the group coefficients are ``(c_j, b_j1)``, see
    :func:`group_cholesky`).
    """
    varying, group_level, row_level = cols.varying, cols.group_level, cols.row_level
    level_values, row_means, xbar = (cols.group_level_values, cols.row_level_means,
                                     cols.slope_means)
    q, J = len(varying), design.n_groups
    theta0, _ = _newton_pooled(design, priors)
    G1 = np.column_stack([np.ones(J), level_values])

    def group_mean(theta):
        mean = np.tile(theta[varying], (J, 1))
        mean[:, 0] += level_values @ theta[group_level] + row_means @ theta[row_level]
        if q == 2:
            mean[:, 0] += xbar * theta[varying[1]]
        return mean

    wide = np.full(q, 2.0 * _TYPICAL_GROUP_SD)
    start = group_mean(theta0)
    mode, hessian = _group_newton(rows, theta0[row_level], start, start,
                                  np.diag(1 / wide**2))
    # Each group's data estimate (the prior's pull undone) and its marginal precision.
    Vd = np.linalg.inv(hessian - np.diag(1 / wide**2) + 1e-8 * np.eye(q))
    b_hat = mode + (Vd @ ((mode - start) / wide**2)[..., None])[..., 0]
    h = 1.0 / np.diagonal(Vd, axis1=1, axis2=2)
    sd, sd_log = np.empty(q), np.empty(q)
    theta0 = theta0.copy()
    for a in range(q):
        if a == 0:
            target, X = b_hat[:, 0] - row_means @ theta0[row_level], G1
            if q == 2:
                target = target - xbar * b_hat[:, 1]  # back to b_j0
        else:
            target, X = b_hat[:, a], np.ones((J, 1))
        sd[a], sd_log[a], gamma = _profile_log_tau(target, h[:, a], X, float(priors.tau_scale))
        if a == 0:
            theta0[0], theta0[group_level] = gamma[0], gamma[1:]
        else:
            theta0[varying[a]] = gamma[0]
    # Groups whose data inform coordinate a (shrinkage weights): the effective number of
    # groups behind the correlation.
    shrink = sd**2 * h / (1 + sd**2 * h)
    corr0, sd_corr = 0.0, 0.0
    if q == 2:
        r = b_hat - group_mean(theta0)
        r[:, 0] -= xbar * r[:, 1]  # (b_j0, b_j1) residuals
        wt = shrink[:, 0] * shrink[:, 1]
        c = np.sum(wt * r[:, 0] * r[:, 1]) / np.sqrt(np.sum(wt * r[:, 0] ** 2)
                                                     * np.sum(wt * r[:, 1] ** 2))
        corr0 = float(np.clip(c, -0.5, 0.5))
        j_eff = max(float(shrink.min(axis=1).sum()), 1.0)
        sd_corr = float(np.clip(2.0 / np.sqrt(j_eff), 0.1, 1.5))
    Lj = group_cholesky(sd, corr0, xbar)
    prec = np.linalg.inv(Lj @ np.swapaxes(Lj, 1, 2))
    mode, hessian = _group_newton(rows, theta0[row_level], mode, group_mean(theta0), prec,
                                  iterations=4)
    cov_mean = np.linalg.inv(G1.T @ G1) * (sd[0] ** 2 + np.linalg.inv(hessian)[:, 0, 0].mean())
    H_row = np.diag(1.0 / np.asarray(priors.theta_sd, dtype=float)[row_level] ** 2)
    if row_level:
        eta = rows.eta(theta0[row_level], mode)
        _, prob = softplus_sigmoid(eta)
        H_row = H_row + (rows.Z_rest * (prob * (1 - prob))[:, None]).T @ rows.Z_rest
    return Prefit(theta=theta0, row_hessian=H_row, group_mode=mode, group_hessian=hessian,
                  tau=sd, log_tau_sd=sd_log, corr=corr0, logit_corr_sd=sd_corr,
                  intercept_mean_cov=cov_mean, group_mean=group_mean(theta0))


def _whitening(design: Design, cols: _Columns, prefit: Prefit, lam: np.ndarray) -> _Whitening:
    """Affine map ``v = shift + scale w`` that makes the posterior roughly N(0, I).

    The population block (``theta``, ``log tau``, ``logit((1 + corr) / 2)``) gets a
    dense scale: the Cholesky factor of the conditional covariance of the row-level
    coefficients (``prefit.row_hessian^-1``), of ``prefit.intercept_mean_cov`` for the
    intercept and the group-level columns, and diagonal entries for the rest. The group
    block, in group order, is ``F = M + K R`` (``R ~ N(0, I)``): ``F`` is the sampled
    coordinate of the partially centred parameterisation (see
    :func:`build_logit_model`), an affine function ``F = A b + const`` of the group's
    coefficients ``b`` at the prefit hyper-parameters, so its mean is ``M``
    (``coord_mean``) and ``K`` (``coord_chol``, lower triangular per group) is the
    Cholesky factor of ``A V A'`` with ``V`` the group's approximate posterior
    covariance. ``lam`` (J, q) are the centring weights.
    """
    varying, row_level = cols.varying, cols.row_level
    p, q, J = design.p, len(varying), design.n_groups
    tau, b, mean_pre = prefit.tau, prefit.group_mode, prefit.group_mean
    n_pop = p + q + (q == 2)
    scale = np.zeros((n_pop, n_pop))
    if row_level:
        scale[np.ix_(row_level, row_level)] = np.linalg.cholesky(
            np.linalg.inv(prefit.row_hessian))
    mean_cols = [0, *cols.group_level]
    scale[np.ix_(mean_cols, mean_cols)] = np.linalg.cholesky(prefit.intercept_mean_cov)
    if q == 2:
        scale[varying[1], varying[1]] = tau[1] / np.sqrt(J)
    shift = [*prefit.theta, *np.log(tau)]
    for a in range(q):
        scale[p + a, p + a] = prefit.log_tau_sd[a]
    if q == 2:
        corr0 = prefit.corr
        shift.append(float(np.log1p(corr0) - np.log1p(-corr0)))  # logit((1 + corr) / 2)
        scale[p + q, p + q] = prefit.logit_corr_sd
    V = np.linalg.inv(prefit.group_hessian)  # (J, q, q)
    # F_a = lam_a mean_a + L_aa^(lam_a - 1) (b_a - mean_a), mean_1 = theta_1 + l10 z_0,
    # with the group's own Cholesky factor L (group_cholesky).
    Lj = group_cholesky(tau, prefit.corr, cols.slope_means)
    L00 = Lj[:, 0, 0]
    d0 = L00 ** (lam[:, 0] - 1)
    M = np.empty((J, q))
    A = np.zeros((J, q, q))
    M[:, 0] = lam[:, 0] * mean_pre[:, 0] + d0 * (b[:, 0] - mean_pre[:, 0])
    A[:, 0, 0] = d0
    if q == 2:
        l10, L11 = Lj[:, 1, 0], Lj[:, 1, 1]
        mean1 = mean_pre[:, 1] + l10 * (b[:, 0] - mean_pre[:, 0]) / L00
        d1 = L11 ** (lam[:, 1] - 1)
        M[:, 1] = lam[:, 1] * mean1 + d1 * (b[:, 1] - mean1)
        A[:, 1, 1] = d1
        A[:, 1, 0] = (lam[:, 1] - d1) * l10 / L00
    cov = A @ V @ np.swapaxes(A, 1, 2)
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(q))
    return _Whitening(pop_shift=np.asarray(shift), pop_scale=scale, coord_mean=M,
                      coord_chol=chol)


# --------------------------------------------------------------------------- group-time cells


@dataclass(frozen=True, eq=False)
class Cells:
    """The group-time cells of a logit model with group-time effects, and their whitening.

    Attributes
    ----------
    codes : ndarray (n,)
        Each row's cell (data order), cells numbered in (group, time) order.
    group, time : ndarray (n_cells,)
        Each cell's group and time code.
    sd, log_sd_sd : float
        Prefit mode of the cells' SD and the approximate posterior SD of its log.
    lam : ndarray (n_cells,)
        Partial centring weights (as for the groups: the weight of the cell's own data).
    coord_mean, coord_scale : ndarray (n_cells,)
        Whitening of the sampled coordinates ``F = coord_mean + coord_scale R``.
    """

    codes: np.ndarray
    group: np.ndarray
    time: np.ndarray
    sd: float
    log_sd_sd: float
    lam: np.ndarray
    coord_mean: np.ndarray
    coord_scale: np.ndarray

    @property
    def n(self) -> int:
        """Number of cells."""
        return int(self.group.size)


def cell_index(design: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's group-time cell and each cell's group and time code."""
    T = int(design.time_codes.max()) + 1
    key = design.group_codes.astype(np.int64) * T + design.time_codes
    uniq, codes = np.unique(key, return_inverse=True)
    return codes.astype(np.intp), (uniq // T).astype(np.intp), (uniq % T).astype(np.intp)


def _cell_prefit(index: tuple, rows: _Rows, offset: np.ndarray, tau_scale: float,
                 parameterization: str) -> Cells:
    """Cells' SD and whitening from a quick fit given the prefit's linear predictor.

    ``index`` is :func:`cell_index` of the design; ``offset`` the prefit's linear
    predictor (rows in stored order). One Newton
    solve per cell for its effect under a vague prior gives an estimate and its
    precision; :func:`_profile_log_tau` turns them into the SD's approximate posterior;
    the cells' conditional posteriors at that SD give the whitening.
    """
    codes, group, time = index
    n_cells = group.size
    stored = rows.cell_codes
    b_hat = np.zeros(n_cells)
    h = np.full(n_cells, 1e-2)
    for _ in range(6):
        _, prob = softplus_sigmoid(offset + b_hat[stored])
        g = np.bincount(stored, weights=rows.y - prob, minlength=n_cells) - 1e-2 * b_hat
        h = np.bincount(stored, weights=prob * (1 - prob), minlength=n_cells) + 1e-2
        step = np.clip(g / h, -2.0, 2.0)
        b_hat = b_hat + step
        if np.max(np.abs(step)) < 1e-6:
            break
    sd, log_sd_sd, _ = _profile_log_tau(b_hat, h, np.zeros((n_cells, 1)), tau_scale)
    if parameterization == "auto":
        s = sd * np.exp(-log_sd_sd)  # conservative, as for the groups
        lam = h * s**2 / (1.0 + h * s**2)
    else:
        lam = np.full(n_cells, 1.0 if parameterization == "centred" else 0.0)
    precision = h + 1.0 / sd**2
    factor = sd ** (lam - 1.0)  # F = sd^(lam - 1) e at the prefit SD
    return Cells(codes, group, time, sd, log_sd_sd, lam,
                 coord_mean=factor * h * b_hat / precision,
                 coord_scale=factor / np.sqrt(precision))


# --------------------------------------------------------------------------- the model


def _data_values(white: _Whitening, cols: _Columns, lam: np.ndarray, q: int,
                 cells: Cells | None = None) -> dict:
    """The logit model's data-dependent numbers (its shared variables besides the priors):
    whitening, group-level values and means, centring weights; with group-time cells the
    population block gains ``log sd_cell`` (last) and the cells' whitening and weights."""
    shift, scale = white.pop_shift, white.pop_scale
    if cells is not None:
        shift = np.append(shift, np.log(cells.sd))
        k = scale.shape[0]
        scale = np.pad(scale, ((0, 1), (0, 1)))
        scale[k, k] = cells.log_sd_sd
    values = {"pop_shift": shift, "pop_scale": scale,
              "group_level_values": cols.group_level_values,
              "row_level_means": cols.row_level_means}
    if cells is not None:
        values.update(cell_mean=cells.coord_mean, cell_scale=cells.coord_scale,
                      cell_lam=cells.lam)
    for a in range(q):
        values[f"coord_mean{a}"] = white.coord_mean[:, a]
        values[f"chol{a}{a}"] = white.coord_chol[:, a, a]
        values[f"lam{a}"] = lam[:, a]
    if q == 2:
        values["chol10"] = white.coord_chol[:, 1, 0]
        values["xbar"] = cols.slope_means
    return values


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
    parameterization : {"auto", "centred", "noncentred"}
        Group effects: see :func:`centring_weights` (``"auto"`` uses the group SDs
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
        from ``theta`` and from the group-level part of the mean) in group order.
        ``model.centring`` is the (J, q) array of centring weights ``lam``,
        ``model.centred`` the mask ``lam > 1/2``, ``model.group_level`` the names of
        the columns constant within groups. Without a group: ``theta`` is the free
        variable. The log posterior is in ``Potential`` terms.

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
    cols = _Columns.of(design)
    varying, group_level, row_level = cols.varying, cols.group_level, cols.row_level
    has_cells = design.time_codes is not None
    index = cell_index(design) if has_cells else None
    rows = _Rows(design, row_level, varying, design.group_codes,
                 rest_means=cols.row_level_means, slope_means=cols.slope_means,
                 cell_codes=index[0] if has_cells else None)
    prefit = _prefit(design, priors, rows, cols)
    # "auto": a conservative group SD, one SD below the prefit's mode on the log scale.
    lam = centring_weights(design, parameterization,
                           group_sd=prefit.tau * np.exp(-prefit.log_tau_sd))
    centred = lam > 0.5
    white = _whitening(design, cols, prefit, lam)
    cells = (_cell_prefit(index, rows, rows.eta(prefit.theta[row_level], prefit.group_mode),
                          float(priors.tau_scale), parameterization) if has_cells else None)
    n_pop = p + q + (q == 2) + has_cells

    labels = [str(v) for v in design.group_labels]
    varying_names = [design.terms[k] for k in varying]
    names = [f"theta[{t}]" for t in design.terms] + [f"log_tau[{t}]" for t in varying_names]
    if q == 2:
        names.append("logit_corr")
    if has_cells:
        names.append("log_sd_cell")
    names += [f"{'b' if centred[j, a] else 'z'}[{labels[j]},{t}]"
              for j in range(J) for a, t in enumerate(varying_names)]
    cell_labels = []
    if has_cells:
        cell_labels = [f"{labels[g]}:{design.time_labels[t]}"
                       for g, t in zip(cells.group, cells.time, strict=True)]
        names += [f"{'e' if lam_c > 0.5 else 'z'}[{label}]"
                  for label, lam_c in zip(cell_labels, cells.lam, strict=True)]
        coords["cell"] = cell_labels
    coords.update(varying=varying_names, group=labels, unconstrained=names)

    # Every data-dependent number is a shared variable: a literal would be compiled
    # into the C code, which would then be rebuilt for each data set.
    values = _data_values(white, cols, lam, q, cells)
    sh = {
        **values,
        "theta_mu": priors.theta_mu, "theta_sd": priors.theta_sd,
        "tau_scale": priors.tau_scale, "lkj_eta": priors.lkj_eta,
    }
    sh = {k: pytensor.shared(np.asarray(v, dtype=float), name=k) for k, v in sh.items()}
    twin = None
    if numpy_likelihood:  # the same log posterior in compiled kernels (PyMC's NUTS uses it)
        from vagg_bayes.bayes.glm_kernel import LogitPosterior

        twin = LogitPosterior(
            {k: sh[k].get_value() for k in ("theta_mu", "theta_sd", "tau_scale", "lkj_eta")},
            p, q, varying[1] if q == 2 else 0, group_level, row_level)
        twin.set_data(values, rows)

    with pm.Model(coords=coords) as model:
        whitened = pm.Flat("w", dims="unconstrained")
        pop = sh["pop_shift"] + pt.dot(sh["pop_scale"], whitened[:n_pop])
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
            # Per-group Cholesky factor of the covariance of (c_j, b_j1) (group_cholesky).
            xb = sh["xbar"]
            s01 = tau[0] * tau[1] * corr
            L00 = pt.sqrt(tau[0] ** 2 + 2 * xb * s01 + xb**2 * tau[1] ** 2)
            l10 = (s01 + xb * tau[1] ** 2) / L00
            L_diag = [L00, tau[0] * tau[1] * pt.sqrt(1 - corr**2) / L00]
        R = whitened[n_pop : n_pop + J * q].reshape((J, q))
        F0 = sh["coord_mean0"] + sh["chol00"] * R[:, 0]
        F = [F0] if q == 1 else [
            F0, sh["coord_mean1"] + sh["chol10"] * R[:, 0] + sh["chol11"] * R[:, 1]]
        # The group means of the population columns enter every group's intercept mean
        # (the rows carry the within-group deviations), (J,).
        g_term = pt.zeros(J)
        if group_level:
            g_term = g_term + pt.dot(sh["group_level_values"], theta[group_level])
        if row_level:
            g_term = g_term + pt.dot(sh["row_level_means"], theta[row_level])
        # Coordinate a of group j, partially centred with weight lam (1: the coefficient
        # b_ja itself is sampled, 0: the standard normal z_ja): the sampled value is
        # F = lam mean + L_aa^lam z, so that b = mean + L_aa z; density log N(z | 0, 1)
        # plus the Jacobian -lam log L_aa.
        zs, bs = [], []
        for a in range(q):
            lam_a, La = sh[f"lam{a}"], L_diag[a]
            if a == 0:
                mean = theta[0] + g_term + (xb * theta[varying[1]] if q == 2 else 0.0)
            else:
                mean = theta[varying[a]] + l10 * zs[0]
            z = (F[a] - lam_a * mean) * pt.exp(-lam_a * pt.log(La))
            bs.append(mean + La * z)
            zs.append(z)
            lp = lp - 0.5 * pt.sum(z**2) - pt.sum(lam_a * pt.log(La))
        coef = bs[0][:, None] if q == 1 else pt.stack(bs, axis=1)  # (J, q), group order
        cell = pt.zeros(0)
        if has_cells:
            # Group-time cells, partially centred like the groups (mean 0): the sampled
            # F = sd^lam z, the effect e = sd z; density log N(z | 0, 1) - lam log sd.
            log_sd_cell = pop[n_pop - 1]
            sd_cell = pt.exp(log_sd_cell)
            lp = lp - 0.5 * (sd_cell / sh["tau_scale"]) ** 2 + log_sd_cell
            F_cell = sh["cell_mean"] + sh["cell_scale"] * whitened[n_pop + J * q:]
            z_cell = F_cell * pt.exp(-sh["cell_lam"] * log_sd_cell)
            cell = sd_cell * z_cell
            lp = lp - 0.5 * pt.sum(z_cell**2) - pt.sum(sh["cell_lam"]) * log_sd_cell
        loglik_op = None
        if numpy_likelihood:
            loglik_op = _make_loglik_op()(rows)
            loglik = loglik_op(theta[row_level], coef, cell)[0]
        else:
            y = pytensor.shared(rows.y, name="y")
            eta = (pt.dot(pytensor.shared(rows.Z_rest, name="Z_rest"), theta[row_level])
                   if row_level else pt.zeros(len(rows.y)))
            for a, W in enumerate(rows.W):
                g = coef[:, a][rows.codes]
                eta = eta + (g if W is None else g * pytensor.shared(W, name=f"W{a}"))
            if has_cells:
                eta = eta + cell[pytensor.shared(rows.cell_codes, name="cell_codes")]
            loglik = pt.sum(y * eta - pt.softplus(eta))
        pm.Potential("logp", lp + loglik)
        pm.Deterministic("theta", theta, dims="term")
        pm.Deterministic("tau", tau, dims="varying")
        if q == 2:
            pm.Deterministic("corr", corr)
        if has_cells:
            pm.Deterministic("sd_cell", sd_cell)
            pm.Deterministic("cell_effect", cell, dims="cell")
        # Deviations from the group's mean (group-level columns included in the mean),
        # the intercept back from c_j = b_j0 + xbar_j b_j1.
        if q == 1:
            u = coef - (theta[0] + g_term)[:, None]
        else:
            b0 = bs[0] - xb * bs[1]
            u = pt.stack([b0 - theta[0] - g_term, bs[1] - theta[varying[1]]], axis=1)
        pm.Deterministic("u", u, dims=("group", "varying"))
    model.centred = centred
    model.centring = lam
    model.slope_means = cols.slope_means
    model.group_level = [design.terms[k] for k in group_level]
    model.cells = cells

    def update(new_design: Design) -> None:
        """Point the compiled model at new data with the same groups count and column
        roles (frozen priors): a new prefit, centring and whitening, the same code.

        Raises ValueError when the new data change the model's structure (then build a
        new model)."""
        new_cols = _Columns.of(new_design)
        same = (loglik_op is not None and new_design.n_groups == J
                and (new_cols.varying, new_cols.group_level, new_cols.row_level)
                == (varying, group_level, row_level)
                and (new_design.time_codes is not None) == has_cells)
        new_index = None
        if same and has_cells:
            new_index = cell_index(new_design)
            same = (np.array_equal(new_index[1], cells.group)
                    and np.array_equal(new_index[2], cells.time))
        if not same:
            raise ValueError("The new data change the logit model's structure (groups, "
                             "group-time cells or column roles); build a new model instead.")
        new_rows = _Rows(new_design, row_level, varying, new_design.group_codes,
                         rest_means=new_cols.row_level_means,
                         slope_means=new_cols.slope_means,
                         cell_codes=None if new_index is None else new_index[0])
        new_prefit = _prefit(new_design, priors, new_rows, new_cols)
        new_lam = centring_weights(new_design, parameterization,
                                   group_sd=new_prefit.tau * np.exp(-new_prefit.log_tau_sd))
        new_white = _whitening(new_design, new_cols, new_prefit, new_lam)
        new_cells = None
        if has_cells:
            new_cells = _cell_prefit(
                new_index, new_rows,
                new_rows.eta(new_prefit.theta[row_level], new_prefit.group_mode),
                float(priors.tau_scale), parameterization)
        new_values = _data_values(new_white, new_cols, new_lam, q, new_cells)
        for key, value in new_values.items():
            sh[key].set_value(np.asarray(value, dtype=float))
        loglik_op.rows = new_rows
        twin.set_data(new_values, new_rows)
        new_centred = new_lam > 0.5
        new_labels = [str(v) for v in new_design.group_labels]
        model._coords["group"] = tuple(new_labels)
        model._coords["unconstrained"] = tuple(
            names[:n_pop] + [f"{'b' if new_centred[j, a] else 'z'}[{new_labels[j]},{t}]"
                             for j in range(J) for a, t in enumerate(varying_names)]
            + names[n_pop + J * q:])
        model.centred = new_centred
        model.centring = new_lam
        model.slope_means = new_cols.slope_means
        model.cells = new_cells

    model.update_data = update
    if twin is not None:
        model.fast_logp_dlogp = twin
    return model
