"""`vagg-bayes estimate` with [variables].instrument: bad IV specs exit 2 with a message; a
real run writes the effect, rho and the first stage."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.cli import main


def make_iv_frame(n_towns=30, n_periods=4, per_cell=5, seed=5):
    """Shops in towns; town-period dose confounded by a latent factor; instrument lever."""
    rng = np.random.default_rng(seed)
    lever, latent = rng.normal(size=(2, n_towns, n_periods))
    dose = 0.8 * lever + latent + 0.3 * rng.normal(size=(n_towns, n_periods))
    town = np.repeat(np.arange(n_towns), n_periods * per_cell)
    period = np.tile(np.repeat(np.arange(n_periods), per_cell), n_towns)
    size = rng.normal(size=town.size)
    sales = (dose[town, period] + 0.8 * latent[town, period] + 0.5 * size
             + 0.4 * rng.normal(size=n_towns)[town] + rng.normal(size=town.size))
    return pd.DataFrame({"town": town, "period": period, "dose": dose[town, period],
                         "lever": lever[town, period], "size": size, "sales": sales})

SPEC = """
[data]
group = "town"
time = "period"

[variables]
outcome = "sales"
treatment = "dose"
controls = ["size"]
instrument = "lever"
{extra}
"""


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "shops.csv"
    make_iv_frame(seed=5).to_csv(data, index=False)

    def write(extra=""):
        spec = tmp_path / "iv.toml"
        spec.write_text(SPEC.format(extra=extra))
        return spec, data
    return write


def run(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_bernoulli_with_instrument_exits_2(files, tmp_path, capsys):
    spec, data = files('[model]\nfamily = "bernoulli"')
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "Gaussian-only" in err and "instrument" in err


def test_instrument_invalid_in_graph_exits_2(files, tmp_path, capsys):
    (tmp_path / "g.dot").write_text(
        "digraph { lever -> dose; lever -> sales; dose -> sales; size -> sales; }")
    spec, data = files('[model]\ngraph = "g.dot"')
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'lever' has a path to the outcome 'sales' not through" in err


def test_missing_instrument_column_exits_2(files, tmp_path, capsys):
    spec, data = files()
    pd.read_csv(data).drop(columns="lever").to_csv(data, index=False)
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'lever'" in err and "[variables].instrument" in err


@pytest.mark.slow
def test_estimate_with_instrument_writes_results(files, tmp_path):
    spec, data = files()
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "vagg_bayes.cli", "estimate", str(spec), "--data", str(data),
         "--out", str(out), "--draws", "300", "--tune", "300", "--seed", "1"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    effects = pd.read_csv(out / "effects.csv")
    assert effects.effect.tolist() == ["total"]
    coefs = pd.read_csv(out / "coefficients.csv").set_index("term")
    assert {"rho", "first_stage~lever", "dose"} <= set(coefs.index)
    first = json.loads((out / "diagnostics.json").read_text())["first_stage"]
    assert first["instruments"] == ["lever"] and first["f"] > 10 and first["partial_r2"] > 0
