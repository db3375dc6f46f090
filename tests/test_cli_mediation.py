"""`vagg-bayes estimate` with mediators: the shipped mediation spec, bad and good."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from vagg_bayes.cli import main

MODELS = Path(__file__).resolve().parents[1] / "models"
MEDIATORS = ["m_cost", "m_speed", "m_supply", "m_transform", "m_spillover", "m_congestion"]


@pytest.fixture
def mediation_spec(tmp_path):
    for name in ("mediation.toml", "mechanisms.dot"):
        shutil.copyfile(MODELS / name, tmp_path / name)
    return tmp_path / "mediation.toml"


def test_shipped_mediation_spec_with_a_mediator_as_control_exits_2(mediation_spec, tmp_path,
                                                                   capsys):
    text = mediation_spec.read_text()
    mediation_spec.write_text(text.replace('"shock_exposure"]', '"shock_exposure", "m_speed"]'))
    code = main(["estimate", str(mediation_spec), "--data", str(tmp_path / "unread.csv"),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "'m_speed'" in err and "mediator" in err and "controls" in err
    assert not (tmp_path / "o").exists()  # failed before anything was written


@pytest.mark.slow
def test_estimate_with_mediators_writes_every_result(mediation_spec, tmp_path, capsys):
    from vagg_bayes.data.simulate import simulate_panel

    panel, _ = simulate_panel(n_firms=400, n_years=5, n_cities=30, seed=11)
    data = tmp_path / "panel.parquet"
    panel.to_parquet(data, index=False)
    out = tmp_path / "out"
    code = main(["estimate", str(mediation_spec), "--data", str(data), "--out", str(out),
                 "--draws", "400", "--tune", "400", "--seed", "5"])
    capsys.readouterr()
    assert code == 0
    for name in ("effects.csv", "coefficients.csv", "diagnostics.json", "posterior.nc",
                 "manifest.json", "sensitivity.csv", "sensitivity.png", "classical.csv",
                 "group_mediation.csv"):
        assert (out / name).is_file(), name
    effects = pd.read_csv(out / "effects.csv")
    assert effects.effect.tolist() == ["total", "direct", "indirect",
                                       *[f"indirect:{m}" for m in MEDIATORS]]
    assert list(effects.columns) == ["effect", "mean", "sd", "hdi_low", "hdi_high",
                                     "prob_positive", "r_hat", "ess_bulk"]
    coefs = pd.read_csv(out / "coefficients.csv").set_index("term")
    assert {"va", "m_cost", "sigma", "sd(city_id)", "m_spillover~va",
            "m_spillover~sd(city_id)"} <= set(coefs.index)
    assert "m_spillover~size_ln" not in coefs.index  # city-level equation: city controls only
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mediators"]["m_spillover"]["level"] == "group-time"
    assert manifest["mediators"]["m_spillover"]["rows"] == 30 * 5
    assert manifest["classical_note"].endswith(".")
    diag = json.loads((out / "diagnostics.json").read_text())
    assert set(diag["equations"]) == {"outcome", *MEDIATORS}
    groups = pd.read_csv(out / "group_mediation.csv")
    assert len(groups) == 2 * panel.city_id.nunique()
    assert pd.read_csv(out / "sensitivity.csv").mediator.tolist() == MEDIATORS
    assert not list(out.glob(".*.tmp"))
