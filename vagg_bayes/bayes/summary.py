"""Posterior draws -> summary rows (mean, sd, 94 % HDI, P(>0), r_hat, ess_bulk).

The one summary every table uses (effects, coefficients, scenarios, per-group effects);
ArviZ computes the HDI, r_hat and ESS of all the named arrays at once.

May import: numpy, pandas, arviz, xarray.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HDI_PROB = 0.94
COLUMNS = ["mean", "sd", "hdi_low", "hdi_high", "prob_positive", "r_hat", "ess_bulk"]


def summarize_draws(draws: dict[str, np.ndarray], index_name: str) -> pd.DataFrame:
    """One row per named (chain, draw) array, in the order given.

    Parameters
    ----------
    draws : dict of str -> ndarray (C, D)
    index_name : str
        Name of the first column (``effect`` or ``term``).
    """
    if not draws:
        return pd.DataFrame(columns=[index_name, *COLUMNS])
    import arviz as az
    import xarray as xr

    names = list(draws)
    stacked = np.stack([np.asarray(draws[n], dtype=float) for n in names], axis=-1)
    if stacked.ndim == 2:  # (draw, name): one chain
        stacked = stacked[None]
    flat = stacked.reshape(-1, len(names))
    constant = np.ptp(flat, axis=0) == 0
    ds = xr.Dataset({"x": (("chain", "draw", "name"), stacked)})
    hdi = np.asarray(az.hdi(ds, hdi_prob=HDI_PROB)["x"])  # (name, 2)
    r_hat = np.asarray(az.rhat(ds)["x"])
    ess = np.asarray(az.ess(ds, method="bulk")["x"])
    frame = pd.DataFrame({
        index_name: names,
        "mean": flat.mean(axis=0),
        "sd": flat.std(axis=0, ddof=1) if flat.shape[0] > 1 else np.zeros(len(names)),
        "hdi_low": np.where(constant, flat[0], hdi[:, 0]),
        "hdi_high": np.where(constant, flat[0], hdi[:, 1]),
        "prob_positive": (flat > 0).mean(axis=0),
        "r_hat": np.where(constant, np.nan, r_hat),
        "ess_bulk": np.where(constant, np.nan, ess),
    })
    return frame[[index_name, *COLUMNS]]
