"""The ``vagg-bayes`` command (DESIGN.md section 4.2).

::

    vagg-bayes demo     [--out DIR] [--quick]
    vagg-bayes estimate SPEC --data FILE --out DIR [--draws N --tune N --chains N --seed S]
                        [--sampler nuts|nutpie|numpyro]

Exit status 0 on success, 2 on bad input (a one-paragraph message naming the file,
column or key and the fix; no traceback). Heavy libraries are imported only once the
arguments are known to be sound, so mistakes are reported at once.

May import: argparse and the standard library at module level; vagg_bayes.* lazily.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

from vagg_bayes.errors import VaggBayesError

EXIT_BAD_INPUT = 2


def _positive(name: str, minimum: int = 1):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}; got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="vagg-bayes",
        description="Bayesian effects of virtual agglomeration on export resilience, "
        "firms within cities.",
    )
    from vagg_bayes import __version__

    parser.add_argument("--version", action="version", version=f"vagg-bayes {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="simulate the embedded panel and run the full analysis")
    demo.add_argument("--out", default="vagg_demo", type=Path, help="results folder")
    demo.add_argument("--quick", action="store_true",
                      help="smaller panel and fewer draws (a few minutes)")
    demo.add_argument("--seed", type=_positive("--seed", 0), default=20241)

    est = sub.add_parser("estimate", help="estimate the effects declared in a TOML spec")
    est.add_argument("spec", type=Path, metavar="SPEC", help="TOML spec file")
    est.add_argument("--data", type=Path, required=True, metavar="FILE",
                     help="CSV or Parquet panel")
    est.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder")
    _sampler_options(est)
    return parser


def _sampler_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draws", type=_positive("--draws"), default=1000)
    p.add_argument("--tune", type=_positive("--tune", 0), default=1000)
    p.add_argument("--chains", type=_positive("--chains"), default=2)
    p.add_argument("--seed", type=_positive("--seed", 0), default=0)
    p.add_argument("--sampler", choices=("nuts", "nutpie", "numpyro"), default="nuts",
                   help="NUTS implementation (nutpie and numpyro are optional extras)")


def _manifest(argv: list[str], data_path: Path | None, seed: int) -> dict:
    from vagg_bayes.provenance import command_manifest

    return command_manifest(argv, data_path, seed)


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise VaggBayesError(
            f"--out {out} is a file, not a folder. Pass the path of a folder "
            "(it is created if it does not exist)."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VaggBayesError(
            f"Cannot create the results folder {out}: {exc.strerror}. "
            "Pass a writable path with --out."
        ) from None


def _report(result, out: Path) -> None:
    for message in result.meta.get("identification_warnings", []):
        print(f"vagg-bayes: warning (causal graph): {message}", file=sys.stderr)
    print(result)
    if "classical_note" in result.meta:
        print(f"\nClassical tests (classical.csv): {result.meta['classical_note']}")
    print(f"\nResults written to {out}/")
    if not result.diagnostics.passed:
        bar = "!" * 78
        print(f"\n{bar}\nWARNING: the posterior FAILS its diagnostics; do not report these "
              f"numbers as they are.", file=sys.stderr)
        for problem in result.diagnostics.problems:
            print(f"  - {problem}", file=sys.stderr)
        print(bar, file=sys.stderr)


def _settings(args):
    from vagg_bayes.bayes.sample import SamplerSettings

    return SamplerSettings(draws=args.draws, tune=args.tune, chains=args.chains,
                           random_seed=args.seed, sampler=args.sampler)


def run_estimate(args, argv: list[str]) -> int:
    """``vagg-bayes estimate``."""
    from vagg_bayes.data.panel import read_table
    from vagg_bayes.spec import load_spec

    spec = load_spec(args.spec)
    from vagg_bayes.bayes.sample import check_sampler_available

    check_sampler_available(args.sampler)
    data = read_table(args.data)
    _check_out_dir(args.out)
    from vagg_bayes.pipeline import estimate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported below, loudly, from the result itself
        result = estimate(data, spec, settings=_settings(args), source=args.data.name)
    result.write(args.out, manifest=_manifest(argv, args.data, args.seed))
    _report(result, args.out)
    return 0


def embedded_models() -> Path:
    """Folder of the shipped spec and DAG files (``models/``)."""
    from importlib import resources

    packaged = Path(str(resources.files("vagg_bayes") / "_models"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "models"


def run_demo(args, argv: list[str]) -> int:
    """``vagg-bayes demo``: simulate, write the panel and its truth, estimate, write results.

    Runs ``baseline.toml`` (the total effect) into ``--out`` and ``mediation.toml`` (six
    parallel mechanisms) into ``<out>/mechanisms/``, and prints every effect beside the
    simulator's truth with whether its 94% HDI covers it.
    """
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.data.simulate import simulate_panel, truth_to_json
    from vagg_bayes.pipeline import estimate
    from vagg_bayes.report.io import write_atomic, write_text
    from vagg_bayes.spec import load_spec

    out: Path = args.out
    _check_out_dir(out)
    # quick: a smaller panel and a shorter warm-up, but enough draws for r_hat <= 1.01
    n_firms, draws, tune = (5_000, 1000, 500) if args.quick else (20_000, 1000, 1000)
    start = time.perf_counter()
    panel, truth = simulate_panel(n_firms=n_firms, seed=args.seed)
    data_path = out / "panel.parquet"
    write_atomic(data_path, lambda p: panel.to_parquet(p, index=False))
    write_text(out / "truth.json", truth_to_json(truth) + "\n")
    models = embedded_models()
    for name in ("baseline.toml", "mediation.toml", "mechanisms.dot"):
        shutil.copyfile(models / name, out / name)
    print(f"Simulated {len(panel)} firm-years ({n_firms} firms) in "
          f"{time.perf_counter() - start:.1f} s -> {data_path}, {out / 'truth.json'}")
    settings = SamplerSettings(draws=draws, tune=tune, chains=2, random_seed=args.seed)
    manifest = _manifest(argv, data_path, args.seed)
    for spec_name, target in (("baseline.toml", out), ("mediation.toml", out / "mechanisms")):
        _check_out_dir(target)
        spec = load_spec(out / spec_name)
        if spec.mediators:
            print(f"\nMechanisms ({out / spec_name}): {len(spec.mediators)} parallel "
                  f"mediators -> {target}/")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reported loudly by _report
            result = estimate(panel, spec, settings=settings, source=data_path.name)
        result.write(target, manifest=manifest)
        _report(result, target)
        print()
        _print_coverage(result, truth)
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s.")
    return 0


def true_effect(truth: dict, outcome: str, effect: str) -> float | None:
    """The simulator's true value of an effect row (None where the truth lacks it)."""
    block = truth.get(outcome, {})
    value = block.get(effect)
    if isinstance(value, int | float):
        return float(value)
    name = effect.split(":", 1)[1] if effect.startswith("indirect:") else None
    if name in block.get("mediators", {}):
        return float(block["mediators"][name]["indirect"])
    return None


def _print_coverage(result, truth: dict) -> None:
    """Print every effect row beside the truth and whether the 94% HDI covers it."""
    effects = result.summary("effects")
    print(f"{'effect':<28}{'truth':>9}{'mean':>9}{'hdi_low':>9}{'hdi_high':>9}  covers")
    for row in effects.itertuples(index=False):
        true = true_effect(truth, result.spec.outcome, row.effect)
        if true is None:
            cover, shown = "n/a", "n/a"
        else:
            cover = "yes" if row.hdi_low <= true <= row.hdi_high else "NO"
            shown = f"{true:.4f}"
        print(f"{row.effect:<28}{shown:>9}{row.mean:>9.4f}{row.hdi_low:>9.4f}"
              f"{row.hdi_high:>9.4f}  {cover}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vagg-bayes`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args, argv)
        return run_estimate(args, argv)
    except VaggBayesError as exc:
        print(f"vagg-bayes: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("vagg-bayes: interrupted; no results were written for the unfinished step.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
