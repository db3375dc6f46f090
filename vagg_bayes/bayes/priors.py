"""Default priors, scaled to the data (as rstanarm and Bambi do), and their report.

Priors are set on the standardised scale of :mod:`vagg_bayes.bayes.design` and
reported on the data scale, so a reader sees ``Normal(0, 2.5 sd(y) / sd(x))`` for each
slope, the rule rstanarm calls *autoscale*.

May import: numpy, pandas, vagg_bayes.bayes.design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.bayes.design import Design

SLOPE_SCALE = 2.5
LKJ_ETA = 2.0


@dataclass(frozen=True)
class Priors:
    """Prior hyper-parameters of one equation (standardised scale).

    Attributes
    ----------
    theta_mu, theta_sd : ndarray (p,)
        Normal prior of the standardised coefficients (the intercept is the
        expected response at the regressors' means).
    sigma_rate : float or None
        Exponential prior rate of the residual SD (Gaussian only).
    tau_scale : float
        Half-normal scale of each group-effect SD.
    lkj_eta : float
        LKJ shape of the correlation of varying intercept and slope.
    joint : bool
        The equation was fitted jointly with a mediator equation
        (:func:`vagg_bayes.bayes.fit.fit_joint_pair`): the LKJ prior is on the 4 x 4
        correlation of both equations' group effects.
    family : str
    """

    theta_mu: np.ndarray
    theta_sd: np.ndarray
    sigma_rate: float | None
    tau_scale: float
    lkj_eta: float
    family: str
    joint: bool = False

    def table(self, design: Design, group: str | None, *, unit: str | None = None,
              time: str | None = None) -> pd.DataFrame:
        """Priors on the data scale, one row per parameter: ``parameter, prior``."""
        rows = []
        for k, term in enumerate(design.terms):
            if k == 0:
                rows.append((term, f"Normal({self.theta_mu[0]:.4g}, {self.theta_sd[0]:.4g}) "
                                   "at the regressors' means"))
            else:
                rows.append((term, f"Normal(0, {self.theta_sd[k] / design.x_sd[k]:.4g})"))
        if self.sigma_rate is not None:
            rows.append(("sigma", f"Exponential(rate={self.sigma_rate:.4g})"))
            if design.unit_effects in ("within", "random"):
                rows.append((f"sd({unit})", f"HalfNormal({self.tau_scale:.4g})"))
            if design.unit_effects == "fixed":
                rows.append((f"{unit} effects", "flat (within transformation)"))
            if design.group_time:
                rows.append((f"sd({group}:{time})", f"HalfNormal({self.tau_scale:.4g})"))
        elif design.group_time:  # logit: group-time effects on the logit scale
            rows.append((f"sd({group}:{time})", f"HalfNormal({self.tau_scale:.4g}) logit scale"))
        if group:
            for k in design.varying:
                name = f"sd({group})" if k == 0 else f"sd({group}:{design.terms[k]})"
                if design.group_time or design.unit_effects != "none":
                    rows.append((name, f"HalfNormal({self.tau_scale:.4g})"))
                    continue
                rows.append((name, f"HalfNormal({self.tau_scale:.4g}) standardised scale"))
            if len(design.varying) == 2:
                where = " on the 4 x 4 correlation of the joint mediator-outcome fit" \
                    if self.joint else ""
                rows.append((f"corr({group})", f"LKJ({self.lkj_eta:g}){where}"))
        return pd.DataFrame(rows, columns=["parameter", "prior"])


def log_prior_density(priors: Priors, posterior) -> np.ndarray:
    """Log density of the population-level priors at every draw: (chain, draw).

    ``posterior`` holds the sampler's standardised-scale variables (``theta`` and, where
    the model has them, ``sigma``, ``sd_unit``, ``sd_cell``, ``tau``, ``corr``). Group
    effects are not included (their prior is part of the hierarchy). Used for
    power-scaling prior sensitivity (``arviz.psens``).
    """
    from scipy import stats

    theta = np.asarray(posterior["theta"])
    lp = stats.norm.logpdf(theta, priors.theta_mu, priors.theta_sd).sum(axis=-1)
    if "sigma" in posterior and priors.sigma_rate is not None:
        lp = lp + stats.expon.logpdf(np.asarray(posterior["sigma"]), scale=1 / priors.sigma_rate)
    for name in ("sd_unit", "sd_cell", "tau"):
        if name in posterior:
            value = np.asarray(posterior[name])
            dens = stats.halfnorm.logpdf(value, scale=priors.tau_scale)
            lp = lp + (dens.sum(axis=-1) if name == "tau" else dens)
    if "corr" in posterior:
        corr = np.asarray(posterior["corr"])
        lp = lp + stats.beta.logpdf((1 + corr) / 2, priors.lkj_eta, priors.lkj_eta) - np.log(2)
    return lp


def default_priors(design: Design, family: str) -> Priors:
    """Weakly informative priors scaled to the data.

    Notes
    -----
    Gaussian: ``theta_0 ~ N(mean(y), 2.5 sd(y))``, ``theta_k ~ N(0, 2.5 sd(y))`` on
    standardised regressors, ``sigma ~ Exponential(1 / sd(y))``,
    ``tau ~ HalfNormal(sd(y))``. Bernoulli (logit): ``theta ~ N(0, 2.5)``,
    ``tau ~ HalfNormal(1)``. Correlation: ``LKJ(2)``.
    """
    p = design.p
    if family == "gaussian":
        sd_y = float(np.std(design.y)) or 1.0
        mu = np.zeros(p)
        mu[0] = float(np.mean(design.y))
        return Priors(mu, np.full(p, SLOPE_SCALE * sd_y), 1.0 / sd_y, sd_y, LKJ_ETA, family)
    return Priors(np.zeros(p), np.full(p, SLOPE_SCALE), None, 1.0, LKJ_ETA, family)
