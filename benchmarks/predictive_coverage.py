"""Posterior predictive intervals for held-out firms, on the package's simulator.

For each of ``--panels`` panels of :func:`vagg_bayes.data.simulate_panel` (firms in cities,
persistent firm quality, city quality, city-year shocks: the simulator's defaults), two
sets of firms are held out before fitting: every eighth firm of the cities the fit sees
("seen cities") and every firm of a sixth of the cities ("held-out cities"). The rest is
fitted with the demo's baseline spec (``models/baseline.toml``: firm effects within firms,
city-year effects, the mechanism DAG), and ``EstimateResult.predict`` draws the held-out
firms' outcomes (seen cities use their posterior city and city-year effects, new cities
draw them from the population; every held-out firm is a new firm). Printed per set: the
share of held-out outcomes inside their 94 % posterior predictive interval (3 % and 97 %
quantiles of the draws), per panel and over all panels.

Run from the repository root::

    .venv/bin/python benchmarks/predictive_coverage.py --panels 10

The table goes into ``benchmarks/RESULTS.md`` (acceptance: 91-97 % in both sets).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the panels and print the table."""
    from vagg_bayes import Analysis, SamplerSettings
    from vagg_bayes.data import simulate_panel
    from vagg_bayes.report.render import to_markdown
    from vagg_bayes.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=10)
    parser.add_argument("--firms", type=int, default=3000)
    parser.add_argument("--years", type=int, default=6)
    parser.add_argument("--cities", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=500)
    args = parser.parse_args()
    spec = load_spec(ROOT / "models" / "baseline.toml")
    settings = SamplerSettings(draws=1000, tune=1000, chains=2, random_seed=1)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.panels):
        data, _ = simulate_panel(args.firms, args.years, args.cities, n_provinces=6,
                                 seed=seed)
        cities = np.sort(data[spec.group].unique())
        held_city = data[spec.group].isin(cities[::6])
        firm_codes = pd.factorize(data[spec.unit])[0]
        held_firm = (firm_codes % 8 == 0) & ~held_city
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = Analysis(spec, settings).fit(data[~held_city & ~held_firm], tables=False)
        fit_s = time.perf_counter() - start
        for name, mask in (("seen cities", held_firm), ("held-out cities", held_city)):
            new = data[mask]
            draws = result.predict(new, seed=seed)
            low, high = np.quantile(draws, [0.03, 0.97], axis=0)
            y = new[spec.outcome].to_numpy()
            inside = (y >= low) & (y <= high)
            rows.append({"panel": seed, "set": name, "rows": len(y),
                         "firms": new[spec.unit].nunique(), "covered": int(inside.sum()),
                         "coverage": inside.mean(), "fit_s": fit_s})
        print(rows[-2], rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print("\nPer panel:\n")
    print(to_markdown(table.pivot(index="panel", columns="set", values="coverage")
                      .reset_index(), 3))
    summary = table.groupby("set", sort=False).agg(
        panels=("panel", "size"), rows=("rows", "sum"), firms=("firms", "sum"),
        coverage=("covered", "sum"), min_panel=("coverage", "min"),
        max_panel=("coverage", "max"))
    summary["coverage"] = summary["coverage"] / summary["rows"]
    print("\nAll panels:\n")
    print(to_markdown(summary.reset_index(), 3))


if __name__ == "__main__":
    main()
