"""The ``vagg-bayes`` command (DESIGN.md section 4.2).

::

    vagg-bayes demo     [--out DIR] [--quick]
    vagg-bayes estimate SPEC --data FILE --out DIR [--draws N --tune N --chains N --seed S]
                        [--sampler nuts|nutpie|numpyro]
    vagg-bayes refute   SPEC --data FILE --out DIR [--tests NAME,...] [--placebos N]
                        [--workers N] [--scheduler ADDR] [--strata COL]
                        [--drop-groups A,B] [--resume] [--draws --tune --chains --seed]
    vagg-bayes compare  SPEC SPEC... --data FILE --out DIR [--loo group|row] [--resume]
                        [--loo-group COL] [--no-refits] [--draws --tune --chains --seed]
    vagg-bayes scenario SPEC --data FILE --out DIR (--shift X | --set X | --to-quantile Q)
                        [--groups G,...] [--threshold T] [--draws --tune --chains --seed]
    vagg-bayes measure  resilience --data FILE --out DIR --firm COL --industry COL
                        --year COL --exports COL --shock-years Y,... [--form ratio|logdiff]
                        [--winsorize LO,HI] [--annual] [--city COL] [--counterfactual]
    vagg-bayes measure  index --data FILE --out DIR --indicators A,B,... [--negative A,...]
                        [--by COL,...] [--name NAME]
    vagg-bayes report   DIR [DIR...]
    vagg-bayes table    DIR... [--format latex|markdown|html] [--out FILE] [--data FILE]
                        [--no-twfe]

The commands that fit (and ``demo``) print one stage line per step on standard error
(:mod:`vagg_bayes.progress`) and take ``--quiet`` to print none (warnings still show).

Exit status 0 on success, 2 on bad input (a one-paragraph message naming the file,
column or key and the fix; no traceback). Heavy libraries are imported only once the
arguments are known to be sound, so mistakes are reported at once.

May import: argparse and the standard library at module level; vagg_bayes.* lazily.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

from vagg_bayes.errors import VaggBayesError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


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
    _quiet_option(demo)

    est = sub.add_parser("estimate", help="estimate the effects declared in a TOML spec")
    est.add_argument("spec", type=Path, metavar="SPEC", help="TOML spec file")
    est.add_argument("--data", type=Path, required=True, metavar="FILE",
                     help="CSV or Parquet panel")
    est.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder")
    est.add_argument("--shock-year", type=int, default=None, metavar="YEAR",
                     help="the shock design: overrides [design] shock_year of the spec")
    _sampler_options(est)
    _refute_parser(sub)
    _compare_parser(sub)
    _scenario_parser(sub)
    _measure_parser(sub)
    _table_parser(sub)
    _report_parser(sub)
    return parser


def _report_parser(sub) -> None:
    rep = sub.add_parser(
        "report", help="rebuild the self-contained HTML report (report.html) of results "
        "folders, without refitting",
        description="Build one self-contained HTML page (no network: figures and style "
        "inline) from the files of one or more results folders, without refitting. "
        "Several folders make ONE combined report, written to report.html in the FIRST "
        "folder: its total effect is the headline sentence, and the effects of every "
        "folder share the forest plot and the tables (e.g. `vagg-bayes report baseline/ "
        "mechanisms/ robustness/`). Each folder's nested results folders (the demo's "
        "mechanisms/ and scenarios/) are included. Sections whose files are absent are "
        "left out with a note.")
    rep.add_argument("dirs", type=Path, nargs="+", metavar="DIR",
                     help="results folders (the --out of estimate, refute, compare, "
                     "scenario or demo); the first one leads and receives report.html")


def _names(text: str) -> tuple[str, ...]:
    """Split ``"A, B,C"`` into ``("A", "B", "C")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _refute_parser(sub) -> None:
    ref = sub.add_parser("refute", help="refutation tests of the estimate: placebos, "
                         "resampling of cities, sensitivity")
    ref.add_argument("spec", type=Path, metavar="SPEC", help="TOML spec file")
    ref.add_argument("--data", type=Path, required=True, metavar="FILE",
                     help="CSV or Parquet panel")
    ref.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder")
    ref.add_argument("--tests", metavar="NAME,...", default=None,
                     help="tests to run, separated by commas (default: all)")
    ref.add_argument("--placebos", type=_positive("--placebos"), default=100, metavar="N",
                     help="treatment permutations of placebo_permute_groups (default 100)")
    ref.add_argument("--workers", type=_positive("--workers"), default=1, metavar="N",
                     help="parallel worker processes for the refits (default 1)")
    ref.add_argument("--scheduler", metavar="ADDR", default=None,
                     help="address of a Dask scheduler to send the refits to")
    ref.add_argument("--strata", metavar="COL", default=None,
                     help="permute the treatment only within the levels of this column "
                     "(constant within groups, e.g. province)")
    ref.add_argument("--drop-groups", metavar="A,B", type=_names, default=(),
                     help="groups dropped together as one extra leave_one_group_out row")
    ref.add_argument("--resume", action="store_true",
                     help="continue an interrupted run from the refits kept in DIR/refits/")
    _sampler_options(ref)


def _quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress (stage lines and progress bars) on standard error; "
                   "warnings and errors are still shown")


def _progress_bar(args) -> bool | None:
    """The refutation progress bar: none with --quiet, else on a terminal."""
    return False if getattr(args, "quiet", False) else None


def _sampler_options(p: argparse.ArgumentParser) -> None:
    _quiet_option(p)
    p.add_argument("--draws", type=_positive("--draws"), default=1000)
    p.add_argument("--tune", type=_positive("--tune", 0), default=1000)
    p.add_argument("--chains", type=_positive("--chains"), default=2)
    p.add_argument("--seed", type=_positive("--seed", 0), default=0)
    p.add_argument("--sampler", choices=("nuts", "nutpie", "numpyro"), default="nuts",
                   help="NUTS implementation (nutpie and numpyro are optional extras)")


def _manifest(argv: list[str], data_path: Path | None, seed: int) -> dict:
    from vagg_bayes.provenance import command_manifest

    return command_manifest(argv, data_path, seed)


_PROBE_BYTES = 1 << 20  # written (and synced) into the results folder before any work


def _check_out_dir(out: Path) -> None:
    """Check, before any work, that the results can be written to ``out``.

    ``out`` must be a folder or a path where one can be made, and a probe file of 1 MiB
    must be writable there (written, synced to disk, removed): a read-only or full
    disk is reported now, not after an hour of sampling. Nothing is left behind:
    folders made for the probe are removed again, so an interrupted run leaves no
    results folder (:meth:`EstimateResult.write` creates it, whole, at the end).
    """
    if out.exists() and not out.is_dir():
        raise VaggBayesError(
            f"--out {out} is a file, not a folder. Pass the path of a folder "
            "(it is created if it does not exist)."
        )
    made = []
    ancestor = out
    while not ancestor.exists() and ancestor != ancestor.parent:
        made.append(ancestor)
        ancestor = ancestor.parent
    probe = out / f".vagg-bayes-probe-{os.getpid()}"
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VaggBayesError(
                f"Cannot create the results folder {out}: {exc.strerror or exc}. "
                "Pass a writable path with --out."
            ) from None
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * _PROBE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise VaggBayesError(
                f"The results folder {out} is not writable ({exc.strerror or exc}; a 1 MiB "
                "test file could not be written): the results could not be saved after "
                "sampling. Free some disk space or pass a writable folder with --out."
            ) from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
        for folder in made:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break


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


_CHILDREN_IGNORE_SIGINT = False  # set while run_estimate samples (see _forked_child)


def _forked_child() -> None:
    """Leave Ctrl-C to the parent in a forked sampler worker.

    The parent stops the workers and reports once, instead of every worker printing a
    traceback.
    """
    if _CHILDREN_IGNORE_SIGINT:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked_child)


def _show_data_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a :class:`~vagg_bayes.errors.DataWarning` as one paragraph on stderr."""
    print(f"vagg-bayes: warning (data): {message}", file=sys.stderr)


def run_estimate(args, argv: list[str]) -> int:
    """``vagg-bayes estimate``.

    The output folder is checked before any work (:func:`_check_out_dir`); the results
    folder appears only once every file is written (:meth:`EstimateResult.write`), so
    Ctrl-C during sampling or writing leaves ``--out`` as it was.
    """
    global _CHILDREN_IGNORE_SIGINT
    from vagg_bayes.data.panel import read_table
    from vagg_bayes.errors import DataWarning
    from vagg_bayes.spec import load_spec

    spec = load_spec(args.spec)
    if args.shock_year is not None:  # the shock design, from the command line
        spec = spec.with_(shock_year=args.shock_year)
    from vagg_bayes.bayes.sample import check_sampler_available

    check_sampler_available(args.sampler)
    data = read_table(args.data)
    _check_out_dir(args.out)
    from vagg_bayes.pipeline import estimate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported below, loudly, from the result itself
        warnings.simplefilter("always", DataWarning)  # degenerate data: said at once
        warnings.showwarning = _show_data_warning
        _CHILDREN_IGNORE_SIGINT = True
        try:
            result = estimate(data, spec, settings=_settings(args), source=args.data.name)
        finally:
            _CHILDREN_IGNORE_SIGINT = False
    from vagg_bayes.progress import stage

    stage(f"writing {args.out}/ ...")
    result.write(args.out, manifest=_manifest(argv, args.data, args.seed))
    args.results_written = True  # a Ctrl-C from here on comes after the results
    _report(result, args.out)
    return 0


def run_refute(args, argv: list[str]) -> int:
    """``vagg-bayes refute``: fit the spec, run the refutation tests, write the table.

    Everything that can be checked is checked before sampling (spec, test names, data,
    --strata, --drop-groups, the negative-control column, the Dask scheduler, the
    output folder). Writes ``refutations.csv``, one figure per resampling test,
    ``refute_manifest.json`` and the estimate's ``effects.csv`` to ``--out``; finished
    refits are kept in ``--out/refits/``, so an interrupted run continues with
    ``--resume``.
    """
    from vagg_bayes.bayes.sample import check_sampler_available
    from vagg_bayes.data.panel import read_table
    from vagg_bayes.refute import Options, check_request, parse_tests
    from vagg_bayes.spec import load_spec

    spec = load_spec(args.spec)
    tests = parse_tests(args.tests)
    check_sampler_available(args.sampler)
    data = read_table(args.data)
    options = Options(placebos=args.placebos, strata=args.strata,
                      drop_groups=args.drop_groups, seed=args.seed, workers=args.workers,
                      scheduler=args.scheduler)
    check_request(spec, data, tests, options, source=args.data.name)
    if args.scheduler is not None:
        from vagg_bayes.refute.runner import check_scheduler

        check_scheduler(args.scheduler)
    _check_out_dir(args.out)
    if args.resume and not (args.out / "refits").is_dir():
        print(f"vagg-bayes: --resume: no finished refits in {args.out}/refits/; starting "
              "afresh.", file=sys.stderr)
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.refute import refute
    from vagg_bayes.report.io import write_csv

    global _CHILDREN_IGNORE_SIGINT
    manifest = _manifest(argv, args.data, args.seed)
    _CHILDREN_IGNORE_SIGINT = True  # Ctrl-C: the parent stops the workers and reports once
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the estimate's diagnostics are reported below
            analysis = Analysis(spec, _settings(args))
            result = analysis.fit(data, source=args.data.name)
            refutation = refute(analysis, data, tests=tests, options=options, out=args.out,
                                result=result, resume=args.resume, source=args.data.name,
                                manifest=manifest, progress=_progress_bar(args))
    except KeyboardInterrupt:
        kept = len(list((args.out / "refits").glob("*.json"))) \
            if (args.out / "refits").is_dir() else 0
        print(f"vagg-bayes: interrupted (Ctrl-C); {kept} finished refits are kept in "
              f"{args.out}/refits/. Run the same command with --resume to continue.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _CHILDREN_IGNORE_SIGINT = False
    write_csv(args.out / "effects.csv", result.summary("effects"))
    print(result)
    if not result.diagnostics.passed:
        print("\nWARNING: the estimate FAILS its diagnostics; its refutations inherit that.",
              file=sys.stderr)
    print(f"\n{refutation}")
    print(f"\nResults written to {args.out}/ (refutations.csv, refute_manifest.json, "
          f"{len(refutation.figures)} figure(s)).")
    return 0


def _compare_parser(sub) -> None:
    cmp = sub.add_parser("compare", help="compare specs by leave-one-out (PSIS-LOO, "
                         "stacking weights) and average their effects")
    cmp.add_argument("specs", type=Path, nargs="+", metavar="SPEC",
                     help="two or more TOML spec files (models are named by file stem)")
    cmp.add_argument("--data", type=Path, required=True, metavar="FILE",
                     help="CSV or Parquet panel")
    cmp.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder")
    cmp.add_argument("--loo", choices=("group", "row"), default="group",
                     help="leave out a whole group (default; a new city) or a row")
    cmp.add_argument("--loo-group", metavar="COL", default=None,
                     help="the group left out (default: the specs' [data].group)")
    cmp.add_argument("--no-refits", action="store_true",
                     help="report high Pareto k without refitting those units exactly")
    cmp.add_argument("--resume", action="store_true",
                     help="continue an interrupted run: exact refits finished in "
                          "OUT/refits/ are read back, not refitted")
    _sampler_options(cmp)


def _scenario_parser(sub) -> None:
    sc = sub.add_parser("scenario", help="price a change of the treatment: the change in "
                        "the mean outcome per group and overall")
    sc.add_argument("spec", type=Path, metavar="SPEC", help="TOML spec file")
    sc.add_argument("--data", type=Path, required=True, metavar="FILE",
                    help="CSV or Parquet panel")
    sc.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder")
    how = sc.add_mutually_exclusive_group(required=True)
    how.add_argument("--shift", type=float, metavar="X", help="raise the treatment by X")
    how.add_argument("--set", dest="set_to", type=float, metavar="X",
                     help="set the treatment to X")
    how.add_argument("--to-quantile", type=float, metavar="Q",
                     help="raise rows below the Q quantile of the treatment to it")
    sc.add_argument("--groups", type=_names, metavar="G,...", default=None,
                    help="only these groups' rows change (values of [data].group)")
    sc.add_argument("--threshold", type=float, metavar="T", default=0.0,
                    help="prob_above = P(change > T) (default 0)")
    _sampler_options(sc)


def run_compare(args, argv: list[str]) -> int:
    """``vagg-bayes compare``: fit every spec to one data file, compare them by LOO.

    Specs, data and output folder are checked before any sampling (two or more specs
    with distinct file stems, the same outcome and family, data that serve each).
    Writes ``comparison.csv``, ``averaged_effects.csv`` and ``manifest.json``.
    """
    from vagg_bayes.bayes.sample import check_sampler_available
    from vagg_bayes.data.panel import read_table
    from vagg_bayes.errors import SpecError
    from vagg_bayes.spec import load_spec

    if len(args.specs) < 2:
        raise SpecError(f"compare needs two or more spec files; got {len(args.specs)} "
                        f"({args.specs[0]}). Pass every spec to compare.")
    specs = {}
    for path in args.specs:
        if path.stem in specs:
            raise SpecError(f"Two spec files are named '{path.stem}' ({path}); models are "
                            "named by file stem, so give each spec its own file name.")
        specs[path.stem] = load_spec(path)
    check_sampler_available(args.sampler)
    data = read_table(args.data)
    _check_out_dir(args.out)
    from vagg_bayes.compare import compare_specs

    cache = args.out / "refits"
    if args.resume and not cache.is_dir():
        print(f"vagg-bayes: --resume: no finished refits in {cache}/; starting afresh.",
              file=sys.stderr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # each model's diagnostics: in the manifest
            comparison = compare_specs(specs, data, _settings(args), loo=args.loo,
                                       group=args.loo_group, source=args.data.name,
                                       seed=args.seed, reloo=not args.no_refits,
                                       cache_dir=cache, resume=args.resume)
    except KeyboardInterrupt:
        kept = len(list(cache.glob("compare-*.json"))) if cache.is_dir() else 0
        print(f"vagg-bayes: interrupted (Ctrl-C); {kept} finished refits are kept in "
              f"{cache}/. Run the same command with --resume to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    from vagg_bayes.progress import stage

    stage(f"writing {args.out}/ ...")
    comparison.write(args.out, manifest=_manifest(argv, args.data, args.seed))
    print(comparison)
    failed = [m for m, r in comparison.results.items() if not r.diagnostics.passed]
    if failed:
        print(f"\nWARNING: the posterior of {', '.join(failed)} FAILS its diagnostics "
              "(run `vagg-bayes estimate` on it for the details).", file=sys.stderr)
    print(f"\nResults written to {args.out}/ (comparison.csv, averaged_effects.csv).")
    return 0


def run_scenario(args, argv: list[str]) -> int:
    """``vagg-bayes scenario``: fit the spec, price the change of the treatment.

    The spec, data, the groups named in ``--groups`` and the output folder are checked
    before any sampling. Writes ``scenario.csv``, the estimate's ``effects.csv`` and
    ``manifest.json``.
    """
    from vagg_bayes.bayes.sample import check_sampler_available
    from vagg_bayes.data.panel import read_table, validate_panel
    from vagg_bayes.errors import DataError, SpecError
    from vagg_bayes.spec import load_spec

    spec = load_spec(args.spec)
    check_sampler_available(args.sampler)
    data = read_table(args.data)
    validate_panel(data, spec, source=args.data.name)
    if args.to_quantile is not None and not 0.0 <= args.to_quantile <= 1.0:
        raise SpecError(f"--to-quantile must be between 0 and 1; got {args.to_quantile}.")
    if args.groups is not None:
        if spec.group is None:
            raise SpecError(f"--groups needs [data].group in {args.spec} (the groups whose "
                            "treatment changes). Remove --groups or set [data].group.")
        known = {str(g) for g in data[spec.group].unique()}
        missing = [g for g in args.groups if g not in known]
        if missing:
            shown = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
            raise DataError(
                f"Group(s) {', '.join(repr(g) for g in missing)} named in --groups are not "
                f"values of '{spec.group}' in {args.data.name} (its {len(known)} groups "
                f"include {shown}). Use values of the '{spec.group}' column, separated by "
                "commas.")
    _check_out_dir(args.out)
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.effects.policy import price_scenario
    from vagg_bayes.provenance import environment
    from vagg_bayes.report.io import staged_folder, write_csv, write_json

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported below from the result itself
        result = Analysis(spec, _settings(args)).fit(data, source=args.data.name,
                                                      tables=False)
    from vagg_bayes.progress import stage

    stage("pricing the scenario ...")
    priced = price_scenario(result, shift=args.shift, set_to=args.set_to,
                            to_quantile=args.to_quantile, groups=args.groups,
                            threshold=args.threshold, data=data)
    files = ["effects.csv", "manifest.json", "scenario.csv"]
    with staged_folder(args.out, replaces=files) as stage:
        write_csv(stage / "scenario.csv", priced.table)
        write_csv(stage / "effects.csv", result.summary("effects"))
        write_json(stage / "manifest.json", {
            **environment(), "command": "scenario", "scenario": priced.description,
            "threshold": args.threshold, "spec": spec.to_dict(),
            "settings": result.settings.to_dict(),
            "diagnostics": result.diagnostics.to_dict(),
            **_manifest(argv, args.data, args.seed), "files": files})
    print(priced)
    if not result.diagnostics.passed:
        print("\nWARNING: the posterior FAILS its diagnostics; do not report these numbers "
              "as they are.", file=sys.stderr)
        for problem in result.diagnostics.problems:
            print(f"  - {problem}", file=sys.stderr)
    print(f"\nResults written to {args.out}/ (scenario.csv, effects.csv).")
    return 0


def _years(text: str) -> tuple[int, ...]:
    """Parse ``"2009,2020"`` into ``(2009, 2020)``."""
    try:
        years = tuple(int(part) for part in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--shock-years takes whole years separated by commas, e.g. 2009,2020; got "
            f"{text!r}") from None
    if not years:
        raise argparse.ArgumentTypeError("--shock-years needs at least one year")
    return years


def _quantiles(text: str) -> tuple[float, float]:
    """Parse ``"0.01,0.99"`` (or ``"0.01"``, meaning 0.01,0.99) for --winsorize."""
    try:
        parts = [float(p) for p in _names(text)]
    except ValueError:
        parts = []
    if len(parts) == 1 and 0 <= parts[0] < 0.5:
        parts = [parts[0], 1.0 - parts[0]]
    if len(parts) != 2 or not 0 <= parts[0] < parts[1] <= 1:
        raise argparse.ArgumentTypeError(
            f"--winsorize takes two quantiles LOW,HIGH with 0 <= LOW < HIGH <= 1 (e.g. "
            f"0.01,0.99) or one LOW < 0.5; got {text!r}")
    return parts[0], parts[1]


def _measure_parser(sub) -> None:
    mea = sub.add_parser("measure", help="build export-resilience measures or a virtual-"
                         "agglomeration index from raw records")
    kinds = mea.add_subparsers(dest="measure", required=True, metavar="KIND")
    res = kinds.add_parser("resilience", help="firm resistance and recovery around shocks "
                           "(against the industry without the firm), survival, years to "
                           "recover; optionally firm-year, city and counterfactual measures")
    res.add_argument("--data", type=Path, required=True, metavar="FILE",
                     help="CSV or Parquet, one row per firm-year")
    res.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder")
    for flag, what in (("--firm", "firm"), ("--industry", "industry"), ("--year", "year"),
                       ("--exports", "export value")):
        res.add_argument(flag, required=True, metavar="COL", help=f"column of the {what}")
    res.add_argument("--shock-years", type=_years, required=True, metavar="Y,...",
                     help="shock years, separated by commas (e.g. 2009,2020)")
    res.add_argument("--form", choices=("ratio", "logdiff"), default="ratio",
                     help="(g_i - g_k(-i)) / |g_k(-i)| (ratio, default) or "
                     "dln X_i - dln X_k(-i) (logdiff)")
    res.add_argument("--winsorize", type=_quantiles, default=None, metavar="LO,HI",
                     help="clip the measures to these quantiles within each year")
    res.add_argument("--annual", action="store_true",
                     help="also the firm-year index of every record (resilience_annual.csv)")
    res.add_argument("--city", metavar="COL", default=None,
                     help="also city-level measures by this column (city_resilience.csv): "
                     "Martin's sensitivity, resistance / recovery against the industry mix")
    res.add_argument("--counterfactual", action="store_true",
                     help="also depth, loss and recovery time against each firm's pre-shock "
                     "trend, with posterior intervals (counterfactual.csv)")
    res.add_argument("--draws", type=_positive("--draws"), default=1000,
                     help="posterior draws for --counterfactual (default 1000)")
    res.add_argument("--seed", type=_positive("--seed", 0), default=0)

    idx = kinds.add_parser("index", help="a composite index of indicators by the "
                           "entropy-weight method")
    idx.add_argument("--data", type=Path, required=True, metavar="FILE",
                     help="CSV or Parquet, one row per unit (e.g. city-year)")
    idx.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder")
    idx.add_argument("--indicators", type=_names, required=True, metavar="A,B,...",
                     help="indicator columns, separated by commas")
    idx.add_argument("--negative", type=_names, default=(), metavar="A,...",
                     help="indicators for which more is worse (reversed)")
    idx.add_argument("--by", type=_names, default=(), metavar="COL,...",
                     help="compute the index within groups of these columns (e.g. year)")
    idx.add_argument("--name", default="entropy_index", metavar="NAME",
                     help="name of the index column (default entropy_index)")


def _table_parser(sub) -> None:
    tab = sub.add_parser("table", help="a paper table of results folders: Bayesian columns "
                         "beside two-way fixed-effects columns")
    tab.add_argument("dirs", type=Path, nargs="+", metavar="DIR",
                     help="results folders of `vagg-bayes estimate` (baseline first, then "
                     "robustness variants); a mediation fit adds its mediator equations")
    tab.add_argument("--format", choices=("markdown", "latex", "html"), default="markdown")
    tab.add_argument("--out", type=Path, default=None, metavar="FILE",
                     help="write the table to FILE (default: print it)")
    tab.add_argument("--data", type=Path, default=None, metavar="FILE",
                     help="the data the folders were estimated on, for the TWFE columns "
                     "(default: the data file in each folder's manifest.json; its hash is "
                     "checked)")
    tab.add_argument("--no-twfe", action="store_true",
                     help="the Bayesian columns alone (no data needed)")


def run_table(args, argv: list[str]) -> int:
    """``vagg-bayes table``: an esttab-style table of results folders
    (:func:`vagg_bayes.report.paper.paper_table`). A folder that is not a results
    folder, or TWFE data that are missing or not the estimate's, exit 2."""
    from vagg_bayes.report.paper import paper_table

    if args.out is not None and args.out.is_dir():
        raise VaggBayesError(f"--out {args.out} is a folder; pass a file name such as "
                             f"{args.out / 'table.tex'}.")
    table = paper_table(args.dirs, data=args.data, twfe=not args.no_twfe)
    text = table.render(args.format)
    if args.out is None:
        print(text)
        return 0
    from vagg_bayes.report.io import write_text

    write_text(args.out, text)
    print(f"Table ({args.format}, {len(table.columns)} columns) written to {args.out}.")
    return 0


def run_measure(args, argv: list[str]) -> int:
    """``vagg-bayes measure resilience|index``: measures from raw records, as CSV files.

    The data and every column are checked before anything is written; a bad input is a
    one-paragraph message naming the file and the column (exit status 2). Each file is
    written atomically, with ``measure_manifest.json`` (command line, data file hash).
    """
    from vagg_bayes.data.panel import read_table
    from vagg_bayes.errors import DataError
    from vagg_bayes.report.io import write_csv, write_json

    data = read_table(args.data)
    _check_out_dir(args.out)
    files: dict[str, object] = {}
    try:
        if args.measure == "index":
            tables = _measure_index(args, data)
        else:
            tables = _measure_resilience(args, data)
    except DataError as exc:
        raise DataError(f"{args.data}: {_as_flags(str(exc))}") from None
    for name, (frame, summary) in tables.items():
        write_csv(args.out / name, frame)
        files[name] = len(frame)
        print(f"{name}: {summary}")
    write_json(args.out / "measure_manifest.json",
               {**_manifest(argv, args.data, getattr(args, "seed", 0)), "files": files})
    print(f"\nResults written to {args.out}/ ({', '.join(files)}, measure_manifest.json).")
    return 0


def run_report(args, argv: list[str]) -> int:
    """``vagg-bayes report DIR [DIR...]``: one HTML report of the folders, no refitting.

    Written atomically to ``report.html`` in the first folder (see
    :func:`vagg_bayes.report.html.build_report`). A folder that is not a results folder
    is a one-paragraph message and exit status 2.
    """
    from vagg_bayes.report.html import write_report

    path = write_report(args.dirs)
    print(f"Report written to {path} (self-contained; open it in a browser).")
    return 0


#: argument names in the measures' messages -> the flags of `vagg-bayes measure`
_MEASURE_FLAGS = {"region": "city", "shock_years": "shock-years"}


def _as_flags(message: str) -> str:
    """Say ``--exports`` where a measure's message says ``exports=``."""
    import re

    return re.sub(r"\b(firm|industry|year|exports|region|indicators|negative|by|"
                  r"shock_years|winsorize|form)=",
                  lambda m: f"--{_MEASURE_FLAGS.get(m.group(1), m.group(1))}", message)


def _defined(frame, columns) -> str:
    return ", ".join(f"{col} defined for {int(frame[col].notna().sum())}" for col in columns)


def _measure_resilience(args, data) -> dict:
    from vagg_bayes import measures

    keys = {"firm": args.firm, "industry": args.industry, "year": args.year,
            "exports": args.exports}
    out = {}
    firm = measures.firm_resilience(data, **keys, shock_years=args.shock_years,
                                    form=args.form, winsorize=args.winsorize)
    out["resilience.csv"] = (firm, f"{len(firm)} firm-shock rows ({len(args.shock_years)} "
                             f"shocks, form {args.form}); "
                             + _defined(firm, ["resistance", "recovery", "survived"])
                             + " (the note column says why a value is missing)")
    if args.annual:
        annual = measures.annual_resilience(data, **keys, form=args.form,
                                            winsorize=args.winsorize)
        out["resilience_annual.csv"] = (annual, f"{len(annual)} firm-year rows; "
                                        + _defined(annual, ["resilience"]))
    if args.city is not None:
        city = measures.city_resilience(data, region=args.city, industry=args.industry,
                                        year=args.year, exports=args.exports,
                                        shock_years=args.shock_years)
        out["city_resilience.csv"] = (city, f"{len(city)} region-shock rows; "
                                      + _defined(city, ["sensitivity", "resistance",
                                                        "recovery"]))
    if args.counterfactual:
        cf = measures.counterfactual_resilience(
            data, firm=args.firm, year=args.year, exports=args.exports,
            shock_years=args.shock_years, draws=args.draws, seed=args.seed)
        out["counterfactual.csv"] = (cf, f"{len(cf)} firm-shock rows, {args.draws} posterior "
                                     "draws each; " + _defined(cf, ["depth", "loss"]))
    return out


def _measure_index(args, data) -> dict:
    import pandas as pd

    from vagg_bayes.measures import entropy_index

    index, weights = entropy_index(data, indicators=args.indicators, negative=args.negative,
                                   by=list(args.by) or None, name=args.name)
    keep = [c for c in data.columns if c not in set(args.indicators)]
    table = data[keep].copy()
    table[args.name] = index
    if isinstance(weights, pd.Series):
        w = weights.rename_axis("indicator").reset_index()
        shown = ", ".join(f"{k} {v:.3f}" for k, v in weights.items())
    else:
        w = weights.reset_index()
        shown = f"per group of {', '.join(args.by)} ({len(weights)} groups)"
    return {"index.csv": (table, f"{len(table)} rows, {args.name} from "
                          f"{len(args.indicators)} indicators"),
            "index_weights.csv": (w, f"entropy weights: {shown}")}


def embedded_models() -> Path:
    """Folder of the shipped spec and DAG files (``models/``)."""
    from importlib import resources

    packaged = Path(str(resources.files("vagg_bayes") / "_models"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "models"


def run_demo(args, argv: list[str]) -> int:
    """``vagg-bayes demo``: simulate raw records, build the indices, estimate, refute, price.

    Simulates firm-year export records and city-year indicators
    (:func:`vagg_bayes.data.raw.simulate_raw`), builds the resilience and
    virtual-agglomeration indices from them (:func:`vagg_bayes.measures.build_indices`;
    the truth is rescaled to effects per unit of the rebuilt index) and writes the raw
    records, the panel and its truth.

    Runs ``baseline.toml`` (the total effect) into ``--out`` and ``mediation.toml`` (six
    parallel mechanisms) into ``<out>/mechanisms/``, and prints every effect beside the
    simulator's truth with whether its 94% HDI covers it; then runs the refutation suite
    on the baseline estimate (``refutations.csv`` in ``--out``) and prints its table, and
    prices the seed paper's three proposals as scenarios (``<out>/scenarios/``,
    :func:`_demo_scenarios`). Last, ``<out>/report.html``: the HTML report of all of it
    (:func:`vagg_bayes.report.html.write_report`).
    """
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.data.raw import rescale_truth, simulate_raw
    from vagg_bayes.data.simulate import truth_to_json
    from vagg_bayes.measures import build_indices
    from vagg_bayes.report.io import write_atomic, write_text
    from vagg_bayes.spec import load_spec

    out: Path = args.out
    _check_out_dir(out)
    # quick: a smaller panel and a shorter warm-up, but enough draws for r_hat <= 1.01
    n_firms, draws, tune = (5_000, 1000, 500) if args.quick else (20_000, 1000, 1000)
    start = time.perf_counter()
    # From raw records to the panel, as a user starts: customs-style firm-year exports by
    # industry and city-year digital-economy indicators; the resilience index and the
    # virtual-agglomeration (entropy) index are built from them (vagg_bayes.measures).
    raw, panel, truth = simulate_raw(n_firms=n_firms, seed=args.seed)
    built = build_indices(raw, panel=panel)
    panel, truth = built.panel, rescale_truth(truth, built.treatment_slope)
    write_atomic(out / "raw_exports.parquet",
                 lambda p: raw.exports.to_parquet(p, index=False))
    write_atomic(out / "raw_indicators.csv",
                 lambda p: raw.indicators.to_csv(p, index=False))
    data_path = out / "panel.parquet"
    write_atomic(data_path, lambda p: panel.to_parquet(p, index=False))
    write_text(out / "truth.json", truth_to_json(truth) + "\n")
    print(built)
    models = embedded_models()
    for name in ("baseline.toml", "mediation.toml", "mechanisms.dot"):
        shutil.copyfile(models / name, out / name)
    print(f"Simulated {len(panel)} firm-years ({n_firms} firms) in "
          f"{time.perf_counter() - start:.1f} s -> {data_path}, {out / 'truth.json'}")
    settings = SamplerSettings(draws=draws, tune=tune, chains=2, random_seed=args.seed)
    manifest = _manifest(argv, data_path, args.seed)
    baseline = None
    for spec_name, target in (("baseline.toml", out), ("mediation.toml", out / "mechanisms")):
        _check_out_dir(target)
        spec = load_spec(out / spec_name)
        if spec.mediators:
            print(f"\nMechanisms ({out / spec_name}): {len(spec.mediators)} parallel "
                  f"mediators -> {target}/")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reported loudly by _report
            analysis = Analysis(spec, settings)
            result = analysis.fit(panel, source=data_path.name)
        result.write(target, manifest=manifest)
        _report(result, target)
        print()
        _print_coverage(result, truth)
        if baseline is None:
            baseline = (analysis, result)
    _demo_refute(*baseline, panel, out, quick=args.quick, seed=args.seed, manifest=manifest,
                 progress=_progress_bar(args))
    _demo_scenarios(baseline[1], panel, out, settings, manifest=manifest)
    from vagg_bayes.report.html import write_report

    print(f"\nReport (open in a browser): {write_report([out])}")
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s.")
    return 0


#: refutation counts of the demo: (--quick, full)
DEMO_REFUTE = ({"placebos": 10, "subsets": 3, "bootstraps": 5, "replicates": 1,
                "loo_max_groups": 3},
               {"placebos": 60, "subsets": 10, "bootstraps": 20, "replicates": 2,
                "loo_max_groups": 10})


def _demo_refute(analysis, result, panel, out: Path, *, quick: bool, seed: int,
                 manifest: dict, progress: bool | None = None) -> None:
    """Run every refutation test on the baseline estimate and print the table.

    ``--quick`` uses so few placebos and bootstrap draws that the randomization and
    bootstrap rows are inconclusive by their own rules (they say how many are needed).
    """
    import os

    from vagg_bayes.refute import Options, refute

    counts = DEMO_REFUTE[0 if quick else 1]
    options = Options(seed=seed, workers=max(1, min(2, os.cpu_count() or 1)), **counts)
    print(f"\nRefutation tests of the baseline estimate ({counts['placebos']} placebos, "
          f"{options.workers} worker processes) -> {out}/refutations.csv")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refutation = refute(analysis, panel, result=result, options=options, out=out,
                            source="panel.parquet", manifest=manifest, progress=progress)
    print(refutation)
    print(f"Refutation tests finished in {time.perf_counter() - started:.0f} s.")


def _demo_scenarios(result, panel, out: Path, settings, *, manifest: dict) -> dict:
    """Price the seed paper's three policy proposals on the baseline estimate.

    Into ``<out>/scenarios/``: ``lagging_to_median.csv`` (city-years below the median of
    the treatment raised to it: integrating lagging cities into digital clusters),
    ``infrastructure_plus_1sd.csv`` (a rise of one standard deviation of the treatment
    everywhere, the size of push digital infrastructure would have to bring) and
    ``physical_agglomeration.csv`` (the baseline spec refitted with a moderator: cities
    with at least the median number of firms ``high``, the others ``low``; the effect at
    each level and their contrast). Returns the three tables by name.
    """
    import numpy as np

    from vagg_bayes.analysis import Analysis
    from vagg_bayes.effects.policy import price_scenario
    from vagg_bayes.report.io import staged_folder, write_csv, write_json

    spec = result.spec
    target = out / "scenarios"
    _check_out_dir(target)
    sd = float(panel[spec.treatment].std())
    tables = {}
    print(f"\nThe seed paper's proposals priced as scenarios -> {target}/")
    for name, label, kwargs in (
            ("lagging_to_median", "lagging city-years raised to the median",
             {"to_quantile": 0.5}),
            ("infrastructure_plus_1sd", f"infrastructure-driven rise of 1 SD ({sd:.3f})",
             {"shift": sd})):
        priced = price_scenario(result, **kwargs, data=panel)
        tables[name] = priced.table
        row = priced.table.iloc[0]
        print(f"  {label}: change in mean {spec.outcome} {row['mean']:+.4f} "
              f"[{row['hdi_low']:+.4f}, {row['hdi_high']:+.4f}], P(> 0) "
              f"{row['prob_positive']:.3f}")
    firms = panel.groupby(spec.group)[spec.unit or spec.group].nunique() \
        if spec.unit else panel.groupby(spec.group).size()
    level = np.where(firms >= firms.median(), "high", "low")
    moderated = panel.assign(physical_agglomeration=panel[spec.group].map(
        dict(zip(firms.index, level, strict=True))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = Analysis(spec.with_(moderators=("physical_agglomeration",)), settings).fit(
            moderated, tables=False)
    effects = fitted.summary("effects")
    tables["physical_agglomeration"] = effects[effects["effect"].str.contains(
        "physical_agglomeration")].reset_index(drop=True)
    for row in tables["physical_agglomeration"].itertuples(index=False):
        print(f"  {row.effect}: {row.mean:+.4f} [{row.hdi_low:+.4f}, {row.hdi_high:+.4f}], "
              f"P(> 0) {row.prob_positive:.3f}")
    with staged_folder(target) as stage:
        for name, table in tables.items():
            write_csv(stage / f"{name}.csv", table)
        write_json(stage / "manifest.json", {**manifest, "scenarios": sorted(tables)})
    return tables


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
    from vagg_bayes.progress import reporting

    with reporting(on=not getattr(args, "quiet", False)):
        return _dispatch(args, argv)


def _dispatch(args, argv: list[str]) -> int:
    """Run the command of ``args``: errors and Ctrl-C become a message and a status."""
    try:
        if args.command == "demo":
            return run_demo(args, argv)
        if args.command == "refute":
            return run_refute(args, argv)
        if args.command == "compare":
            return run_compare(args, argv)
        if args.command == "scenario":
            return run_scenario(args, argv)
        if args.command == "measure":
            return run_measure(args, argv)
        if args.command == "report":
            return run_report(args, argv)
        if args.command == "table":
            return run_table(args, argv)
        return run_estimate(args, argv)
    except VaggBayesError as exc:
        print(f"vagg-bayes: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        out = getattr(args, "out", None)
        if getattr(exc, "published", False) or getattr(args, "results_written", False):
            what = f"after the results were written to {out}/"
        elif args.command == "estimate":
            what = (f"nothing was written: {out} is as it was before the run (a results "
                    "folder appears only when every file is complete)")
        else:
            what = "no results were written for the unfinished step"
        print(f"vagg-bayes: interrupted (Ctrl-C); {what}.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
