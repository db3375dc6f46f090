"""Sensitivity of each indirect effect to mediator-outcome confounding (MATH.md section 4).

Imai, Keele and Yamamoto (2010): let ``rho`` be the correlation of the errors of the
mediator and outcome equations that an unobserved confounder would induce. The
average causal mediation effect (ACME) of path ``k`` as a function of ``rho`` is, per
posterior draw, ::

    ACME_k(rho) = a_k (s1 / s2) ( r~ - rho sqrt( (1 - r~^2) / (1 - rho^2) ) )

It equals ``a_k b_k`` at ``rho = 0`` and crosses zero at ``rho = r~``. One path's
``rho`` varies at a time (the others at 0), so each path gets a posterior of its
crossing point.

May import: numpy, pandas, arviz, matplotlib (lazily), vagg_bayes.bayes.summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vagg_bayes.bayes.summary import HDI_PROB

#: Grid of ``rho`` values searched, strictly inside (-1, 1).
RHO_GRID = np.round(np.linspace(-0.99, 0.99, 397), 6)
#: Residual SD of the latent logistic variable of a logit model.
LOGISTIC_SD = float(np.pi / np.sqrt(3.0))


def error_parts(b, sigma_m, sigma_y):
    """``(s1, r~)`` per draw from the outcome's mediator slope and the two residual SDs.

    Notes
    -----
    The outcome regression without mediator ``k`` has error ``e1 = b_k e_k + e_y``
    (``e_k`` the mediator equation's error, SD ``s2 = sigma_m``; ``e_y`` the outcome
    equation's, SD ``sigma_y``), so ``s1^2 = b_k^2 s2^2 + sigma_y^2`` and
    ``r~ = corr(e1, e_k) = b_k s2 / s1``.
    """
    b, s2 = np.asarray(b, float), np.asarray(sigma_m, float)
    s1 = np.sqrt(b**2 * s2**2 + np.asarray(sigma_y, float) ** 2)
    return s1, b * s2 / s1


def acme_curve(a, b, sigma_m, sigma_y, rho=RHO_GRID) -> np.ndarray:
    """ACME(rho) per draw: array (draws, len(rho)).

    Parameters
    ----------
    a : array (draws,)
        Treatment -> mediator slope (sample average).
    b : array (draws,)
        Mediator -> outcome slope.
    sigma_m : array (draws,)
        Residual SD of the mediator equation.
    sigma_y : array (draws,) or float
        Residual SD of the outcome equation (``LOGISTIC_SD`` on the latent scale of a
        logit model).
    rho : array, default RHO_GRID

    Notes
    -----
    ``ACME(rho) = a (s1 / s2) (r~ - rho sqrt((1 - r~^2) / (1 - rho^2)))``; see
    :func:`error_parts`.
    """
    a = np.asarray(a, float).reshape(-1, 1)
    s2 = np.asarray(sigma_m, float).reshape(-1, 1)
    s1, r = error_parts(np.asarray(b, float).reshape(-1, 1), s2,
                        np.asarray(sigma_y, float).reshape(-1, 1))
    rho = np.asarray(rho, float).reshape(1, -1)
    return a * (s1 / s2) * (r - rho * np.sqrt((1 - r**2) / (1 - rho**2)))


def crossing_point(b, sigma_m, sigma_y) -> np.ndarray:
    """Per draw, the ``rho`` at which ACME(rho) is zero: ``r~ = b s2 / s1``."""
    return error_parts(b, sigma_m, sigma_y)[1]


def hdi_columns(x: np.ndarray, prob: float = HDI_PROB) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval of each column of ``x`` (draws, m): ``(low, high)``.

    One call of :func:`arviz.hdi` with the draws as one chain (the narrowest window
    holding ``floor(prob * draws) + 1`` sorted draws).
    """
    import arviz as az

    x = np.asarray(x, float)
    interval = az.hdi(x.reshape(1, x.shape[0], -1), hdi_prob=prob)  # (m, 2)
    return interval[:, 0], interval[:, 1]


def _first_zero(rho: np.ndarray, y: np.ndarray) -> float:
    """Linear interpolation of the sign change of ``y`` nearest ``rho = 0``."""
    sign = np.sign(y)
    flips = np.flatnonzero(sign[:-1] * sign[1:] <= 0)
    if not len(flips):
        return float("nan")
    i = flips[np.argmin(np.abs(rho[flips]))]
    if y[i + 1] == y[i]:
        return float(rho[i])
    return float(rho[i] - y[i] * (rho[i + 1] - rho[i]) / (y[i + 1] - y[i]))


def sensitivity_curves(paths: dict[str, dict], rho: np.ndarray = RHO_GRID) -> dict:
    """Posterior mean and HDI of ACME(rho) for each path.

    Parameters
    ----------
    paths : dict of str -> dict
        Mediator -> ``{"a", "b", "sigma_m", "sigma_y"}`` draws (see :func:`acme_curve`).

    Returns
    -------
    dict of str -> DataFrame
        Columns ``rho, mean, hdi_low, hdi_high``.
    """
    out = {}
    for name, p in paths.items():
        curve = acme_curve(p["a"], p["b"], p["sigma_m"], p["sigma_y"], rho)
        low, high = hdi_columns(curve)
        out[name] = pd.DataFrame({"rho": rho, "mean": curve.mean(axis=0),
                                  "hdi_low": low, "hdi_high": high})
    return out


def sensitivity_table(paths: dict[str, dict], curves: dict | None = None) -> pd.DataFrame:
    """One row per mediator: how much confounding would explain the indirect effect away.

    Columns: ``mediator``; ``acme`` (posterior mean at rho = 0, ``a b``); ``rho_zero``
    (where the posterior-mean ACME(rho) crosses zero); ``rho_mean``, ``rho_hdi_low``,
    ``rho_hdi_high`` (posterior of the per-draw crossing point ``r~``); ``rho_hdi_zero``
    (the rho nearest 0 at which the bound of the 94 % HDI nearest zero reaches zero:
    0 when the HDI at rho = 0 already holds zero; NaN when it never does on the grid).
    """
    curves = curves or sensitivity_curves(paths)
    rows = []
    for name, p in paths.items():
        c = curves[name]
        rho = c["rho"].to_numpy()
        mean = c["mean"].to_numpy()
        cross = crossing_point(p["b"], p["sigma_m"], p["sigma_y"]).reshape(-1)
        lo_r, hi_r = hdi_columns(cross[:, None])
        i0 = int(np.argmin(np.abs(rho)))
        lo, hi = c["hdi_low"].to_numpy(), c["hdi_high"].to_numpy()
        if lo[i0] <= 0 <= hi[i0]:
            rho_hdi = 0.0
        else:
            rho_hdi = _first_zero(rho, lo if lo[i0] > 0 else hi)
        rows.append({
            "mediator": name,
            "acme": float(np.mean(np.asarray(p["a"]) * np.asarray(p["b"]))),
            "rho_zero": _first_zero(rho, mean),
            "rho_mean": float(cross.mean()),
            "rho_hdi_low": float(lo_r[0]),
            "rho_hdi_high": float(hi_r[0]),
            "rho_hdi_zero": rho_hdi,
        })
    return pd.DataFrame(rows)


def plot_sensitivity(curves: dict, path: str | Path, *, scale: str = "outcome") -> None:
    """Write a PNG: ACME(rho) posterior mean and 94 % band, one panel per mediator.

    Parameters
    ----------
    curves : dict of str -> DataFrame
        From :func:`sensitivity_curves`.
    path : str or Path
        Output file; written as PNG whatever its ending.
    scale : str, default "outcome"
        Label of the vertical axis (e.g. "latent logit scale").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(curves)
    ncol = min(3, k)
    nrow = -(-k // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.2 * nrow), squeeze=False,
                             sharex=True)
    for ax, (name, c) in zip(axes.flat, curves.items(), strict=False):
        ax.fill_between(c["rho"], c["hdi_low"], c["hdi_high"], alpha=0.3,
                        label=f"{int(HDI_PROB * 100)}% HDI")
        ax.plot(c["rho"], c["mean"], lw=1.5, label="posterior mean")
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        zero = _first_zero(c["rho"].to_numpy(), c["mean"].to_numpy())
        if np.isfinite(zero):
            ax.axvline(zero, color="C3", lw=0.8, ls="--", label=f"mean = 0 at rho = {zero:.2f}")
        i0 = int(np.argmin(np.abs(c["rho"].to_numpy())))
        reach = 3 * max(abs(c["hdi_low"].iloc[i0]), abs(c["hdi_high"].iloc[i0]))
        if reach > 0:
            ax.set_ylim(-reach, reach)  # the region where the sign flips, not the tails
        ax.legend(fontsize="x-small", loc="best")
        ax.set_title(name)
        ax.set_xlabel("rho (error correlation)")
        ax.set_ylabel(f"ACME ({scale})")
    for ax in list(axes.flat)[k:]:
        ax.set_visible(False)
    fig.suptitle("Sensitivity of each indirect effect to mediator-outcome confounding")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
