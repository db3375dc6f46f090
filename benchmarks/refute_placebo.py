"""City-permutation placebos at scale: ``placebo_permute_groups`` as one command.

The data: the package's simulated firm-year panel (``--rows / 10`` firms over 10 years in
``--groups`` cities), renamed to neutral columns ``y`` (resilience), ``x`` (the city-year
treatment), ``z1`` (firm size), ``z2`` (log GDP per head), ``grp`` (city), ``yr``
(year). The spec: varying intercept and slope of ``x`` by city, year effects, no
city-year effects (the model of ``benchmarks/refit.py``: collapsed, 280 cities x 2 varying
coefficients). ``Analysis.fit`` is timed once (it compiles); then the refutation suite
runs ``--placebos`` permutations of the cities' treatment series (each city's series
given to another city) in ``--workers`` forked processes, and the time per refit is
printed beside the plain fit's.

Run from the repository root::

    .venv/bin/python benchmarks/refute_placebo.py --workers 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402


def panel(rows: int, groups: int, seed: int = 1):
    """Simulate the panel with neutral column names (city-year treatment ``x``)."""
    import numpy as np

    from vagg_bayes.data.simulate import simulate_panel

    data, _ = simulate_panel(n_firms=max(rows // 10, groups), n_years=10, n_cities=groups,
                             seed=seed)
    out = data[["resilience", "va", "size_ln", "gdp_pc_ln", "city_id", "year"]]
    out.columns = ["y", "x", "z1", "z2", "grp", "yr"]
    return out.assign(grp=np.char.add("c", out["grp"].to_numpy().astype(str))
                      ).reset_index(drop=True)


def main() -> None:
    """Fit once, run the placebos, print the table."""
    from vagg_bayes import Analysis, SamplerSettings, Spec
    from vagg_bayes.refute import Options, refute

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=280)
    parser.add_argument("--placebos", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (refutations.csv, figure, refit cache); "
                        "default: a temporary folder")
    args = parser.parse_args()
    if args.out is None:
        import tempfile

        args.out = Path(tempfile.mkdtemp(prefix="refute_placebo_"))
    print(machine())
    data = panel(args.rows, args.groups)
    spec = Spec(outcome="y", treatment="x", controls=("z1", "z2"), group="grp", time="yr",
                varying_slope=True, group_time_effects=False)
    settings = SamplerSettings(draws=args.draws, tune=args.tune, chains=2, random_seed=1)
    analysis = Analysis(spec, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        result = analysis.fit(data, tables=False)
        fit_s = time.perf_counter() - start
        print(f"{len(data)} rows, {data['grp'].nunique()} cities: fit {fit_s:.1f} s "
              f"(compile + sample, chains in parallel)", flush=True)
        start = time.perf_counter()
        table = refute(analysis, data, result=result, tests="placebo_permute_groups",
                       options=Options(placebos=args.placebos, workers=args.workers),
                       out=args.out)
        wall = time.perf_counter() - start
    row = table.summary().iloc[0]
    seconds = table.record["seconds"]
    per_refit = _refit_seconds(args.out)
    median = f"{statistics.median(per_refit):.1f}" if per_refit else "n/a"
    print(f"\n{row['refuter']} ({row['effect']}): {row['verdict']}, p = {row['p_value']:.4f}, "
          f"{row['n_refits']} refits, {row['n_failed']} failed")
    print("\n| rows | cities | placebos | workers | fit s | placebos wall s | wall s per refit "
          "| median s per refit in a worker |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(data)} | {data['grp'].nunique()} | {args.placebos} | {args.workers} | "
          f"{fit_s:.1f} | {wall:.1f} | {wall / args.placebos:.2f} | {median} |")
    print(f"\nsuite timings: {seconds}")


def _refit_seconds(out: Path) -> list[float]:
    import json

    return [json.loads(p.read_text())["seconds"] for p in (out / "refits").glob("*.json")]


if __name__ == "__main__":
    main()
