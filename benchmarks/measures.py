"""How fast the measures run on 1,000,000 firm-year rows (target: under 20 s).

Synthetic customs-like records: exactly ``--rows`` firm-year rows (about 103,000 firms x
10 years, 2011-2020, 40 industries, 280 cities), lognormal export values with a shock in
2015, 2018 and 2020; about 3 % of the firm-years missing and 2 % with zero exports, so
every undefined case occurs. Each
measure is timed on its own (wall time, best of ``--repeats``), data generation not
included.

Run from the repository root::

    .venv/bin/python benchmarks/measures.py                 # 1,000,000 rows
    .venv/bin/python benchmarks/measures.py --rows 100000   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vagg_bayes.measures import (  # noqa: E402
    annual_resilience,
    city_resilience,
    counterfactual_resilience,
    entropy_index,
    firm_resilience,
)

SHOCKS = [2015, 2018, 2020]


def records(n_rows: int, n_years: int = 10, seed: int = 0) -> pd.DataFrame:
    """Exactly ``n_rows`` firm-year export records with missing years and zeros."""
    rng = np.random.default_rng(seed)
    n_firms = int(np.ceil(n_rows / (n_years * 0.96))) + 10
    years = 2011 + np.arange(n_years)
    firm = np.repeat(np.arange(n_firms), n_years)
    year = np.tile(years, n_firms)
    industry = rng.integers(0, 40, n_firms)[firm]
    city = rng.integers(0, 280, n_firms)[firm]
    shock = np.isin(year, SHOCKS) * -0.15
    growth = 0.05 + shock + rng.standard_t(5, firm.size) * 0.5
    level = rng.normal(6.0, 1.5, n_firms)[firm]
    lnx = level + np.cumsum(growth.reshape(n_firms, n_years), axis=1).ravel()
    x = np.exp(lnx)
    x[rng.random(firm.size) < 0.02] = 0.0
    keep = rng.random(firm.size) >= 0.03
    df = pd.DataFrame({"firm": firm[keep], "industry": industry[keep], "city": city[keep],
                       "year": year[keep], "exports": x[keep]})
    return df.iloc[:n_rows].reset_index(drop=True)


def timed(label: str, fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn``; prints one line."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    rows = len(out[0]) if isinstance(out, tuple) else len(out)
    print(f"{label:<58}{best:>8.2f} s   ({rows:,} rows out)", flush=True)
    return best


def main() -> None:
    """Time every measure on the records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()

    df = records(args.rows)
    keys = dict(firm="firm", industry="industry", year="year", exports="exports")
    print(f"{len(df):,} firm-year rows ({df.firm.nunique():,} firms, {df.industry.nunique()} "
          f"industries); {platform.python_version()}, numpy {np.__version__}, pandas "
          f"{pd.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    t = {}
    t["ratio"] = timed(f"firm_resilience, ratio, {len(SHOCKS)} shocks",
                       lambda: firm_resilience(df, **keys, shock_years=SHOCKS), args.repeats)
    t["logdiff"] = timed(f"firm_resilience, logdiff, {len(SHOCKS)} shocks, winsorised",
                         lambda: firm_resilience(df, **keys, shock_years=SHOCKS,
                                                 form="logdiff", winsorize=(0.01, 0.99)),
                         args.repeats)
    t["annual"] = timed("annual_resilience (every firm-year), logdiff",
                        lambda: annual_resilience(df, **keys), args.repeats)
    t["city"] = timed(f"city_resilience, {len(SHOCKS)} shocks",
                      lambda: city_resilience(df, region="city", industry="industry",
                                              year="year", exports="exports",
                                              shock_years=SHOCKS), args.repeats)
    indicators = pd.DataFrame(np.random.default_rng(1).lognormal(size=(len(df), 7)),
                              columns=[f"x{j}" for j in range(7)]).assign(year=df["year"]
                                                                          .to_numpy())
    t["entropy"] = timed("entropy_index, 7 indicators on every row, by year",
                         lambda: entropy_index(indicators, indicators=[f"x{j}" for j in
                                                                       range(7)],
                                               negative=["x6"], by="year"), args.repeats)
    t["counterfactual"] = timed(
        f"counterfactual_resilience, {len(SHOCKS)} shocks, {args.draws} draws",
        lambda: counterfactual_resilience(df, firm="firm", year="year", exports="exports",
                                          shock_years=SHOCKS, draws=args.draws),
        args.repeats)
    core = t["ratio"] + t["logdiff"] + t["annual"] + t["city"] + t["entropy"]
    print(f"\nTotal, every measure but the counterfactual draws: {core:.1f} s "
          f"(target < 20 s); with them: {core + t['counterfactual']:.1f} s")


if __name__ == "__main__":
    main()
