"""The command line: bad input exits 2 with a message naming the culprit; a real run writes
every file of the results folder; same data, spec and seed give byte-identical effects."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from vagg_bayes.cli import main


def run(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_missing_column(panel_files, tmp_path, capsys):
    spec, data = panel_files
    spec.write_text(spec.read_text().replace('treatment = "dose"', 'treatment = "dosage"'))
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert "'dosage'" in err and "panel.csv" in err and "dose" in err


def test_non_numeric_value(panel_files, tmp_path, capsys):
    spec, data = panel_files
    df = pd.read_csv(data)
    df["dose"] = df["dose"].astype(object)
    df.loc[7, "dose"] = "high"
    df.to_csv(data, index=False)
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'dose'" in err and "high" in err


def test_missing_values(panel_files, tmp_path, capsys):
    spec, data = panel_files
    df = pd.read_csv(data)
    df.loc[[3, 9], "size"] = None
    df.to_csv(data, index=False)
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'size'" in err and "missing" in err.lower()


def test_duplicate_unit_time(panel_files, tmp_path, capsys):
    spec, data = panel_files
    df = pd.read_csv(data)
    pd.concat([df, df.iloc[[0]]]).to_csv(data, index=False)
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "duplicate" in err.lower() and "pupil" in err


def test_constant_treatment(panel_files, tmp_path, capsys):
    spec, data = panel_files
    df = pd.read_csv(data)
    df["dose"] = 1.0
    df.to_csv(data, index=False)
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'dose'" in err and "single value" in err


@pytest.mark.parametrize("content", ["", "pupil,wave,school,dose,kind,size,score\n"])
def test_empty_file(panel_files, tmp_path, capsys, content):
    spec, data = panel_files
    data.write_text(content)
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "panel.csv" in err and "empty" in err.lower()


def test_missing_file(panel_files, tmp_path, capsys):
    spec, _ = panel_files
    code, err = run(["estimate", spec, "--data", tmp_path / "nope.csv", "--out",
                     tmp_path / "o"], capsys)
    assert code == 2 and "nope.csv" in err


def test_unknown_spec_key(panel_files, tmp_path, capsys):
    spec, data = panel_files
    spec.write_text(spec.read_text().replace('family = "gaussian"',
                                             'family = "gaussian"\nvarying_slopes = true'))
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'varying_slopes'" in err and "varying_slope" in err


def test_missing_spec_file(panel_files, tmp_path, capsys):
    _, data = panel_files
    code, err = run(["estimate", tmp_path / "none.toml", "--data", data, "--out",
                     tmp_path / "o"], capsys)
    assert code == 2 and "none.toml" in err


def test_mediator_listed_as_control_fails_before_sampling(panel_files, tmp_path, capsys):
    spec, data = panel_files
    spec.write_text(spec.read_text().replace('controls = ["size", "kind"]',
                                             'controls = ["size", "kind"]\nmediators = ["size"]'))
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'size'" in err and "causal path" in err


def test_bad_sampler_settings_exit_2(panel_files, tmp_path, capsys):
    spec, data = panel_files
    with pytest.raises(SystemExit) as exc:
        main(["estimate", str(spec), "--data", str(data), "--out", str(tmp_path), "--draws", "0"])
    assert exc.value.code == 2
    assert "--draws" in capsys.readouterr().err


def test_out_is_a_file(panel_files, tmp_path, capsys):
    spec, data = panel_files
    target = tmp_path / "file.txt"
    target.write_text("x")
    code, err = run(["estimate", spec, "--data", data, "--out", target], capsys)
    assert code == 2 and "file.txt" in err


@pytest.mark.slow
def test_estimate_writes_results_and_is_reproducible(panel_files, tmp_path):
    spec, data = panel_files
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "-m", "vagg_bayes.cli", "estimate", str(spec), "--data", str(data),
             "--out", str(out), "--draws", "500", "--tune", "500", "--seed", "3"],
            capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    a, b = outs
    for name in ("effects.csv", "coefficients.csv", "diagnostics.json", "posterior.nc",
                 "manifest.json"):
        assert (a / name).is_file(), name
    assert (a / "effects.csv").read_bytes() == (b / "effects.csv").read_bytes()
    effects = pd.read_csv(a / "effects.csv")
    assert list(effects.columns) == ["effect", "mean", "sd", "hdi_low", "hdi_high",
                                     "prob_positive", "r_hat", "ess_bulk"]
    assert effects.effect.tolist() == ["total"]
    coefs = pd.read_csv(a / "coefficients.csv").set_index("term")
    assert {"Intercept", "dose", "size", "kind[beta]", "wave[1]", "sigma", "sd(school)"} <= set(
        coefs.index)
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["seed"] == 3 and len(manifest["data_file_sha256"]) == 64
    assert manifest["spec"]["treatment"] == "dose" and "pymc" in manifest["versions"]
    diag = json.loads((a / "diagnostics.json").read_text())
    assert {"divergences", "max_r_hat", "min_ess_bulk", "min_ess_tail", "sampler"} <= set(diag)
    assert not list(a.glob("*.tmp"))
