"""Every refutation test on the demo panel, timed: what ``vagg-bayes demo`` runs.

The panel: the demo's (``simulate_raw`` with 20,000 firms, or 5,000 with ``--quick``, seed 0,
the indices built by ``vagg_bayes.measures``); the spec: the embedded ``baseline.toml``
(firm effects within firms, city-year effects) with its DAG ``mechanisms.dot``; the
sampler and the refutation counts: the demo's (``cli.DEMO_REFUTE``, 2 worker processes).
Prints the fit's time, the whole refutation run's wall time and the table with each
test's verdict, refits and seconds (summed over its refits, which run in the 2 workers).

Run from the repository root::

    .venv/bin/python benchmarks/demo_refute.py            # the full demo panel
    .venv/bin/python benchmarks/demo_refute.py --quick    # the --quick demo's panel
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402


def main() -> None:
    """Fit the demo's baseline, run its refutation suite, print the timings."""
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.cli import DEMO_REFUTE, embedded_models
    from vagg_bayes.data.raw import simulate_raw
    from vagg_bayes.measures import build_indices
    from vagg_bayes.refute import Options, refute
    from vagg_bayes.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the --quick demo's panel")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(machine())
    n_firms, draws, tune = (5_000, 1000, 500) if args.quick else (20_000, 1000, 1000)
    raw, panel, _ = simulate_raw(n_firms=n_firms, seed=0)
    panel = build_indices(raw, panel=panel).panel
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name in ("baseline.toml", "mechanisms.dot"):
            shutil.copyfile(embedded_models() / name, out / name)
        spec = load_spec(out / "baseline.toml")
        print(f"{len(panel):,} rows, {panel[spec.group].nunique()} cities, "
              f"{draws} draws x 2 chains after {tune} tuning steps", flush=True)
        analysis = Analysis(spec, SamplerSettings(draws=draws, tune=tune, chains=2,
                                                  random_seed=0))
        start = time.perf_counter()
        result = analysis.fit(panel)
        print(f"fit: {time.perf_counter() - start:.1f} s", flush=True)
        counts = DEMO_REFUTE[0 if args.quick else 1]
        options = Options(seed=0, workers=args.workers, **counts)
        start = time.perf_counter()
        refutation = refute(analysis, panel, result=result, options=options,
                            out=out / "refute", source="panel.parquet", manifest={},
                            progress=False)
        wall = time.perf_counter() - start
    table = refutation.summary()
    cols = [c for c in ("refuter", "effect", "verdict", "n_refits", "seconds", "p_value")
            if c in table]
    print(f"all refutation tests: {wall:.1f} s wall ({wall / 60:.1f} min), "
          f"{int(table['n_refits'].sum())} refits, {args.workers} workers")
    print(table[cols].to_string(index=False))


if __name__ == "__main__":
    main()
