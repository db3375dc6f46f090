"""``vagg-bayes refute``: bad requests exit 2 before sampling; a killed run resumes.

A run killed half way and resumed gives the table an uninterrupted run gives.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from vagg_bayes.cli import main

SPEC = """
[data]
group = "town"
time  = "period"

[variables]
outcome   = "exp_res"
treatment = "dig"
controls  = ["scale_ln"]

[model]
group_time_effects = false
"""


@pytest.fixture
def files(tmp_path, firm_panel_factory):
    data, _ = firm_panel_factory(n_towns=6, n_plants=6, n_periods=4, seed=51)
    data = data.assign(prov=data["town"] % 2)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    path = tmp_path / "panel.csv"
    data.to_csv(path, index=False)
    return spec, path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_unknown_test_name_exits_2_before_anything_is_written(files, tmp_path, capsys):
    spec, data = files
    out = tmp_path / "o"
    code, _, err = run(["refute", spec, "--data", data, "--out", out, "--tests",
                        "placebo_permute_groups,dumy_outcome"], capsys)
    assert code == 2
    assert "Unknown refutation test 'dumy_outcome'" in err and "dummy_outcome" in err
    assert not out.exists()


def test_missing_strata_column_exits_2(files, tmp_path, capsys):
    spec, data = files
    code, _, err = run(["refute", spec, "--data", data, "--out", tmp_path / "o",
                        "--strata", "province"], capsys)
    assert code == 2
    assert "'province' named in --strata" in err and "panel.csv" in err and "prov" in err
    assert len(err.strip().splitlines()) == 1  # one paragraph


def test_unknown_group_to_drop_exits_2(files, tmp_path, capsys):
    spec, data = files
    code, _, err = run(["refute", spec, "--data", data, "--out", tmp_path / "o",
                        "--drop-groups", "0,town9"], capsys)
    assert code == 2 and "'town9' named in --drop-groups" in err


ARGS = ["--tests", "placebo_permute_groups", "--placebos", "8", "--draws",
        "100", "--tune", "150", "--seed", "3", "--strata", "prov"]


def _table(folder):
    return pd.read_csv(folder / "refutations.csv").drop(columns="seconds")


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_table(files, tmp_path, capsys):
    spec, data = files
    whole = tmp_path / "whole"
    code, out, _ = run(["refute", spec, "--data", data, "--out", whole, *ARGS], capsys)
    assert code == 0 and "placebo_permute_groups" in out
    assert (whole / "refute_placebo_permute_groups.png").is_file()
    assert (whole / "effects.csv").is_file()

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vagg_bayes.cli", "refute", str(spec), "--data", str(data),
         "--out", str(killed), *ARGS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((killed / "refits").glob("*.json"))) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = len(list((killed / "refits").glob("*.json")))
    assert 3 <= finished < 8 and not (killed / "refutations.csv").exists()

    code, _, _ = run(["refute", spec, "--data", data, "--out", killed, *ARGS, "--resume"],
                     capsys)
    assert code == 0
    manifest = json.loads((killed / "refute_manifest.json").read_text())
    assert manifest["refits"]["cached"] == finished
    assert manifest["refits"]["run"] == 8 - finished
    pd.testing.assert_frame_equal(_table(killed), _table(whole))


def test_ctrl_c_says_where_the_finished_refits_are(files, tmp_path, capsys, monkeypatch):
    import vagg_bayes.refute as refute_package

    def interrupted(*args, **kwargs):
        (tmp_path / "o" / "refits").mkdir(parents=True, exist_ok=True)
        (tmp_path / "o" / "refits" / "placebo-00000-abc.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr("vagg_bayes.analysis.Analysis.fit", lambda self, *a, **k: None)
    monkeypatch.setattr(refute_package, "refute", interrupted)
    spec, data = files
    code, _, err = run(["refute", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 130
    assert "1 finished refits are kept in" in err and "--resume" in err


def refused_part(err):
    return err.split("cannot run on it: ")[1].split(". Tests that need no refit")[0]


SHOCK = SPEC.replace('[data]\n', '[data]\nunit = "plant"\n') + "\n[design]\nshock_year = 2002\n"


def test_shock_design_refuses_refit_tests_before_sampling(files, tmp_path, capsys):
    spec, data = files
    spec.write_text(SHOCK)
    out = tmp_path / "o"
    code, _, err = run(["refute", spec, "--data", data, "--out", out], capsys)
    assert code == 2 and not out.exists()
    assert "shock design ([design].shock_year = 2002) cannot be refitted" in err
    refused = refused_part(err)
    assert "placebo_time" in refused and "data_subset" in refused
    assert "posterior_predictive" in refused  # needs predictions the design cannot make
    assert "graph_independence" not in refused and "unobserved_common_cause" not in refused
    assert "--tests graph_independence,unobserved_common_cause" in err
    code, _, err = run(["refute", spec, "--data", data, "--out", out, "--tests",
                        "unobserved_common_cause,placebo_time"], capsys)
    assert code == 2 and not out.exists()
    assert "cannot run on it: placebo_time." in err
    assert "--tests unobserved_common_cause " in err


def test_refit_free_tests_of_a_shock_design_and_instrument_specs_pass_the_check(files):
    from vagg_bayes.refute import Options, check_request
    from vagg_bayes.spec import Spec

    _, path = files
    data = pd.read_csv(path)
    spec = Spec(outcome="exp_res", treatment="dig", unit="plant", group="town",
                time="period", shock_year=2002)
    check_request(spec, data, ["graph_independence", "unobserved_common_cause"], Options())
    iv = Spec(outcome="exp_res", treatment="dig", unit="plant", group="town", time="period",
              instrument=("scale_ln",))  # IV refits are supported: nothing refused
    check_request(iv, data, ["placebo_time", "data_subset"], Options())
