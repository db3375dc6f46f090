"""Posterior draws -> summary rows (mean, sd, 94 % HDI, P(>0), r_hat, ess_bulk).

May import: numpy, pandas, arviz.
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
    import arviz as az

    rows = []
    for name, arr in draws.items():
        arr = np.asarray(arr, dtype=float)
        flat = arr.reshape(-1)
        constant = np.ptp(flat) == 0
        low, high = (flat[0], flat[0]) if constant else az.hdi(flat, hdi_prob=HDI_PROB)
        rows.append(
            {
                index_name: name,
                "mean": float(flat.mean()),
                "sd": float(flat.std(ddof=1)) if flat.size > 1 else 0.0,
                "hdi_low": float(low),
                "hdi_high": float(high),
                "prob_positive": float((flat > 0).mean()),
                "r_hat": float("nan") if constant else float(az.rhat(arr)),
                "ess_bulk": float("nan") if constant else float(az.ess(arr, method="bulk")),
            }
        )
    return pd.DataFrame(rows, columns=[index_name, *COLUMNS])
