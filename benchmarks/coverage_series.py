"""Series of the panel-coverage benchmark side by side, pooled, and their Monte Carlo bands.

Reads the per-panel rows that ``benchmarks/panel_coverage.py`` writes (one or more CSV
files; rows of the same model, effect and panel seed are kept once), cuts the seeds into
series of ``--series-size`` consecutive panels, and prints per series and pooled the
coverage of the 94 % HDIs, the mean posterior SD, the SD of the posterior means and their
ratio. Then, for a perfectly calibrated model, the chance that one series of that size
lands outside the acceptance bounds (coverage 88-99 %, SD ratio 0.8-1.25) by Monte Carlo
error alone: the coverage count is binomial(n, 0.94), and the SD of n normal estimates
has ``(n - 1) s^2 / sigma^2 ~ chi^2(n - 1)``.

Run from the repository root::

    .venv/bin/python benchmarks/coverage_series.py benchmarks/panel_coverage_runs.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import stats

NOMINAL = 0.94
COVERAGE_BOUNDS = (0.88, 0.99)
RATIO_BOUNDS = (0.8, 1.25)


def chance_outside(n: int) -> tuple[float, float]:
    """P(coverage outside its bounds), P(SD ratio outside its bounds) for a calibrated model.

    The posterior SD is taken as known (it varies little across panels); the ratio is
    ``sigma / s`` with ``s`` the SD of ``n`` normal posterior means.
    """
    lo, hi = COVERAGE_BOUNDS
    count = stats.binom(n, NOMINAL)
    # covered panels k: inside when lo <= k / n <= hi
    k_lo, k_hi = int(np.ceil(lo * n - 1e-9)), int(np.floor(hi * n + 1e-9))
    p_cov = 1.0 - (count.cdf(k_hi) - count.cdf(k_lo - 1))
    chi = stats.chi2(n - 1)
    r_lo, r_hi = RATIO_BOUNDS
    # ratio = 1 / sqrt(chi2 / (n - 1)) < r_lo  <=>  chi2 > (n - 1) / r_lo^2
    p_ratio = chi.sf((n - 1) / r_lo**2) + chi.cdf((n - 1) / r_hi**2)
    return float(p_cov), float(p_ratio)


def table(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Coverage, mean posterior SD, SD of the means and their ratio per ``by``."""
    out = frame.groupby(by, sort=False).agg(
        panels=("panel", "nunique"), coverage=("covered", "mean"),
        mean_posterior_sd=("sd", "mean"), sd_of_means=("mean", "std"),
        bias=("error", "mean"))
    out["sd_ratio"] = out["mean_posterior_sd"] / out["sd_of_means"]
    return out


def main() -> None:
    """Print the per-series and pooled tables and the Monte Carlo bands."""
    from vagg_bayes.report.render import to_markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="CSV files written by panel_coverage.py")
    parser.add_argument("--series-size", type=int, default=40)
    parser.add_argument("--model", default="default",
                        help="keep the models whose label starts with this")
    args = parser.parse_args()
    frame = pd.concat([pd.read_csv(path) for path in args.runs], ignore_index=True)
    frame = frame.drop_duplicates(["model", "effect", "panel"])
    frame = frame[frame["model"].str.startswith(args.model)]
    models = frame["model"].unique()
    if len(models) != 1:
        raise SystemExit(f"--model {args.model!r} must match exactly one model label in "
                         f"{args.runs}; it matches {list(models)}. Give a longer prefix.")
    first = frame["panel"].min()
    frame = frame.assign(series=(frame["panel"] - first) // args.series_size + 1)
    seeds = frame.groupby("series")["panel"].agg(["min", "max"])
    per_series = table(frame, ["series", "effect"]).reset_index()
    per_series.insert(1, "seeds", per_series["series"].map(
        lambda s: f"{seeds.loc[s, 'min']}-{seeds.loc[s, 'max']}"))
    print(f"Per series of {args.series_size} panels ({models[0]}):\n")
    print(to_markdown(per_series, 3))
    print("\nPooled:\n")
    print(to_markdown(table(frame, ["effect"]).reset_index(), 3))
    p_cov, p_ratio = chance_outside(args.series_size)
    print(f"\nA calibrated model's series of {args.series_size} panels falls outside the "
          f"coverage bounds {COVERAGE_BOUNDS} with probability {p_cov:.3f}, and outside the "
          f"SD-ratio bounds {RATIO_BOUNDS} with probability {p_ratio:.3f}, per effect, by "
          f"Monte Carlo error alone.")


if __name__ == "__main__":
    main()
