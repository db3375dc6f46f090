"""Placebo-type refutations on the simulated panel with and without an effect.

Issue 9's acceptance: on a panel with no effect the estimate covers zero and no
placebo-type or dummy test claims an effect; with a real effect the placebo tests pass.
The panel is :func:`vagg_bayes.data.simulate_panel` (``effect_scale=0``: no effect of the
treatment on anything; ``1``: the default effects), fitted with ``models/baseline.toml``
(firm effects within firms, city-year effects); the tests are
``placebo_permute_groups``, ``placebo_time`` and ``dummy_outcome``.

Run from the repository root::

    .venv/bin/python benchmarks/refute_acceptance.py --workers 2
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Fit each panel, run the placebo-type tests, print one table."""
    import pandas as pd

    from vagg_bayes import Analysis, SamplerSettings, load_spec
    from vagg_bayes.data.simulate import simulate_panel
    from vagg_bayes.refute import Options, refute
    from vagg_bayes.report.render import to_markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firms", type=int, default=1500)
    parser.add_argument("--cities", type=int, default=40)
    parser.add_argument("--years", type=int, default=6)
    parser.add_argument("--placebos", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(machine())
    spec = load_spec(ROOT / "models" / "baseline.toml").with_(graph=None)
    frames = []
    for scale in (0.0, 1.0):
        data, truth = simulate_panel(n_firms=args.firms, n_cities=args.cities,
                                     n_years=args.years, n_provinces=min(10, args.cities),
                                     seed=args.seed, effect_scale=scale)
        settings = SamplerSettings(draws=args.draws, tune=args.tune, random_seed=args.seed)
        analysis = Analysis(spec, settings)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = analysis.fit(data, tables=False)
            table = refute(analysis, data, result=result,
                           tests="placebo_permute_groups,placebo_time,dummy_outcome",
                           options=Options(placebos=args.placebos, workers=args.workers,
                                           replicates=2, seed=args.seed))
        effect = result.summary("effects").set_index("effect").loc["total"]
        frame = table.summary()[["refuter", "effect", "estimate", "refuted_estimate",
                                 "hdi_low", "hdi_high", "verdict", "p_value", "n_refits"]]
        frame.insert(0, "panel", f"effect_scale={scale:g} (truth "
                                 f"{truth['resilience']['total']:.3f}; estimate HDI "
                                 f"[{effect['hdi_low']:.3f}, {effect['hdi_high']:.3f}])")
        frames.append(frame)
        print(f"effect_scale={scale:g}: {time.perf_counter() - start:.0f} s", flush=True)
    print(to_markdown(pd.concat(frames, ignore_index=True), 4))


if __name__ == "__main__":
    main()
