"""Stage lines of long commands on standard error; silent with --quiet and in the API."""

import io
import re
import warnings

from vagg_bayes import progress
from vagg_bayes.cli import main

STAGE = re.compile(r"^vagg-bayes: \[\s*\d+ s\] (.*)$")


def stages(err: str) -> list[str]:
    return [m.group(1) for line in err.splitlines() if (m := STAGE.match(line))]


def test_stage_lines_only_inside_reporting():
    stream = io.StringIO()
    progress.stage("outside")  # no reporter: nothing, nowhere
    with progress.reporting(stream=stream):
        assert progress.enabled()
        progress.stage("one")
        with progress.silenced():
            assert not progress.enabled()
            progress.stage("hidden")
        progress.stage("two")
    with progress.reporting(on=False, stream=stream):
        progress.stage("quiet")
    progress.stage("after")
    assert stages(stream.getvalue()) == ["one", "two"]
    assert stream.getvalue().count("\n") == 2


def test_a_forked_worker_says_nothing():
    stream = io.StringIO()
    reporter = progress.StageReporter(stream)
    reporter.pid = -1  # as in a child forked after the reporter was made
    reporter("from a worker")
    assert stream.getvalue() == ""


def test_quiet_estimate_prints_nothing_on_stderr(tmp_path, panel_factory, capsys):
    data = tmp_path / "panel.csv"
    panel_factory(n_units=60, n_waves=2).rename(columns={"score": "y", "dose": "d"}).to_csv(
        data, index=False)
    spec = tmp_path / "plain.toml"
    spec.write_text('[variables]\noutcome = "y"\ntreatment = "d"\ncontrols = ["size"]\n')
    argv = ["estimate", spec, "--data", data, "--out", tmp_path / "q", "--draws", "600",
            "--tune", "300", "--seed", "3"]
    code = main([str(a) for a in [*argv, "--quiet"]])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""  # diagnostics pass at these settings: nothing to warn about
    assert "Results written to" in captured.out
    code = main([str(a) for a in argv])  # the same run, not quiet
    err = capsys.readouterr().err
    assert code == 0
    assert stages(err) == ["fitting the outcome equation y 1/1 (120 rows) ...",
                           "effects ...", f"writing {tmp_path / 'q'}/ ..."]


def test_estimate_with_a_mediator_reports_every_equation(tmp_path, firm_panel_factory,
                                                         capsys):
    frame, _ = firm_panel_factory(n_towns=12, n_plants=4, n_periods=3, seed=2)
    data = tmp_path / "plants.csv"
    frame.to_csv(data, index=False)
    spec = tmp_path / "med.toml"
    spec.write_text('[data]\nunit = "plant"\ngroup = "town"\ntime = "period"\n'
                    '[variables]\noutcome = "exp_res"\ntreatment = "dig"\n'
                    'controls = ["scale_ln"]\nmediators = ["cost_eff"]\n')
    argv = ["estimate", spec, "--data", data, "--out", tmp_path / "o", "--draws", "100",
            "--tune", "100"]
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    n = len(frame)
    assert stages(err) == [
        f"fitting the outcome equation exp_res 1/2 ({n} rows) ...",
        f"fitting the mediator equation cost_eff 2/2 ({n} rows) ...",
        "effects ...",
        "mediation tables (sensitivity, classical tests, per group) ...",
        f"writing {tmp_path / 'o'}/ ...",
    ]


def test_refits_say_nothing(firm_panel_factory):
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.spec import Spec

    frame, _ = firm_panel_factory(n_towns=8, n_plants=3, n_periods=3, seed=4)
    spec = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",), group="town")
    analysis = Analysis(spec, SamplerSettings(draws=50, tune=50, chains=2, random_seed=1))
    stream = io.StringIO()
    with progress.reporting(stream=stream), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny draws: failed diagnostics are expected
        analysis.fit(frame, tables=False)
        first = stream.getvalue()
        analysis.refit(frame.assign(dig=frame["dig"] + 1.0))
    assert stages(first) == [f"fitting the outcome equation exp_res 1/1 ({len(frame)} rows) "
                             "...", "effects ..."]
    assert stream.getvalue() == first  # the refit added no line


def test_refute_and_compare_report_their_stages(tmp_path, panel_factory, capsys):
    data = tmp_path / "panel.csv"
    panel_factory(n_units=60, n_waves=2).to_csv(data, index=False)
    plain = tmp_path / "plain.toml"
    plain.write_text('[variables]\noutcome = "score"\ntreatment = "dose"\n'
                     'controls = ["size"]\n')
    grouped = tmp_path / "grouped.toml"
    grouped.write_text('[data]\ngroup = "school"\n' + plain.read_text())
    sampling = ["--draws", "100", "--tune", "100"]
    code = main([str(a) for a in ["refute", grouped, "--data", data, "--out",
                                  tmp_path / "r", "--tests", "unobserved_common_cause",
                                  *sampling]])
    err = capsys.readouterr().err
    assert code == 0, err
    assert stages(err) == ["fitting the outcome equation score 1/1 (120 rows) ...",
                           "effects ...", "refutation test unobserved_common_cause 1/1 ..."]
    code = main([str(a) for a in ["compare", plain, grouped, "--data", data, "--out",
                                  tmp_path / "c", "--loo", "group", "--loo-group", "school",
                                  "--no-refits", *sampling]])
    err = capsys.readouterr().err
    assert code == 0, err
    fit = "fitting the outcome equation score 1/1 (120 rows) ..."
    assert stages(err) == ["model plain 1/2 ...", fit, "effects ...", "model grouped 2/2 ...",
                           fit, "effects ...",
                           "leave-one-group-out and stacking ...",
                           f"writing {tmp_path / 'c'}/ ..."]
    for command in (["refute", grouped, "--tests", "unobserved_common_cause"],
                    ["compare", plain, grouped, "--loo-group", "school", "--no-refits"]):
        code = main([str(a) for a in [*command, "--data", data, "--out", tmp_path / "q",
                                      *sampling, "--quiet"]])
        err = capsys.readouterr().err
        assert code == 0 and stages(err) == [], err
