"""Firm effects at scale: ``vagg-bayes estimate`` on a firm-year panel with unit effects
(firms within cities, Mundlak means) and city-year effects, whole process.

The data (neutral names: firms ``fid`` in cities ``cid`` over years ``yr``; outcome
``y``, a city-year treatment ``x``, firm controls ``z1`` (time-varying) and ``z2``
(time-invariant)) have a persistent firm effect correlated with ``z1`` and city-year
shocks. Each run is a subprocess timed whole with ``/usr/bin/time -v`` (CSV load,
statistics, compilation with warm PyTensor and numba caches, sampling, writing); side by
side, the same data with ``unit_effects = "none"`` and no city-year effects (the model
before unit effects existed).

Run from the repository root::

    .venv/bin/python benchmarks/scale_panel.py --rows 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, run_timed, treatment_row, vagg_command  # noqa: E402

SPEC = """\
[data]
unit = "fid"
group = "cid"
time = "yr"

[variables]
outcome = "y"
treatment = "x"
controls = ["z1", "z2"]

[model]
family = "gaussian"
unit_effects = "{unit_effects}"
{cells}
"""


def make_panel(rows: int, cities: int = 280, years: int = 10, seed: int = 1) -> pd.DataFrame:
    """A balanced firm-year panel of about ``rows`` rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    firms = rows // years
    city = rng.integers(0, cities, firms)
    quality = rng.normal(size=firms)
    x_ct = rng.normal(size=(cities, years)) * 0.5 + rng.normal(size=cities)[:, None]
    shock = 0.2 * rng.normal(size=(cities, years))
    fid = np.repeat(np.arange(firms), years)
    yr = np.tile(np.arange(years), firms)
    cid = city[fid]
    z1 = 0.6 * quality[fid] + rng.normal(size=fid.size)
    z2 = rng.normal(size=firms)[fid]
    x = x_ct[cid, yr]
    y = (0.3 * x + 0.2 * z1 - 0.1 * z2 + quality[fid] + 0.1 * rng.normal(size=cities)[cid]
         + shock[cid, yr] + 0.05 * yr + rng.normal(size=fid.size))
    return pd.DataFrame({"fid": fid, "cid": cid, "yr": yr, "y": y, "x": x, "z1": z1, "z2": z2})


def main() -> None:
    """Time the runs and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    args = parser.parse_args()
    print(machine())
    models = {"within + city-year (default)": ("within", ""),
              "none, no city-year (before)": ("none", "group_time_effects = false")}
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for rows in args.rows:
            data = folder / f"panel_{rows}.csv"
            make_panel(rows).to_csv(data, index=False)
            for label, (unit_effects, cells) in models.items():
                spec = folder / f"spec_{unit_effects}.toml"
                spec.write_text(SPEC.format(unit_effects=unit_effects, cells=cells))
                warm = [*vagg_command(), "estimate", str(spec), "--data", str(data), "--out",
                        str(folder / "warm"), "--draws", "50", "--tune", "50"]
                # fills PyTensor's and numba's compile caches, as any earlier run would
                run_timed(warm)
                runs = []
                for r in range(args.repeats):
                    out = folder / f"out_{rows}_{unit_effects}_{r}"
                    cmd = [*vagg_command(), "estimate", str(spec), "--data", str(data),
                           "--out", str(out), "--draws", str(args.draws), "--tune",
                           str(args.tune), "--seed", str(r + 1)]
                    t = run_timed(cmd)
                    if t.returncode != 0:
                        raise RuntimeError(t.stderr[-3000:])
                    row = treatment_row(out)
                    runs.append((t.wall, t.peak_mib, row["mean"], row["sd"], row["max_r_hat"]))
                    print(f"{rows} {label} run {r + 1}: {t.wall:.1f} s {t.peak_mib:.0f} MiB "
                          f"effect {row['mean']:.3f} ({row['sd']:.3f}) max r_hat "
                          f"{row['max_r_hat']:.3f}", flush=True)
                med = [statistics.median(v) for v in zip(*runs)]
                table.append((rows, label, *med))
    print("\n| rows | model | wall s (median) | peak MiB | effect of x (truth 0.3) | sd | "
          "max r_hat |\n|---:|---|---:|---:|---:|---:|---:|")
    for rows, label, wall, peak, mean, sd, rhat in table:
        print(f"| {rows:,} | {label} | {wall:.1f} | {peak:.0f} | {mean:.3f} | {sd:.3f} | "
              f"{rhat:.3f} |")


if __name__ == "__main__":
    main()
