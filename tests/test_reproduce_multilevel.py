"""Published multilevel estimates reproduced by `vagg-bayes estimate`.

Gelman & Hill (2007), section 12.6: Minnesota radon, houses within counties, with the
county-level predictor log uranium (a treatment constant within groups) —
``lmer(log_radon ~ floor + log_uranium + (1 | county))``.
"""

import pandas as pd
import pytest

from vagg_bayes.cli import main
from vagg_bayes.datasets import PUBLISHED, load_radon

SPEC = """
[data]
group = "county"

[variables]
outcome = "log_radon"
treatment = "log_uranium"
controls = ["floor"]

[model]
family = "gaussian"
"""


@pytest.mark.slow
def test_radon_varying_intercept_with_county_predictor(tmp_path):
    data = tmp_path / "radon.csv"
    load_radon().to_csv(data, index=False)
    spec = tmp_path / "radon.toml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    assert main(["estimate", str(spec), "--data", str(data), "--out", str(out)]) == 0
    coefs = pd.read_csv(out / "coefficients.csv").set_index("term")
    effects = pd.read_csv(out / "effects.csv").set_index("effect")
    published = PUBLISHED["radon_uranium"]["estimates"]
    for term, name in [("Intercept", "Intercept"), ("floor", "floor"),
                       ("log_uranium", "log_uranium")]:
        value, se = published[name]
        assert abs(coefs.loc[term, "mean"] - value) < se, term
        # posterior SD agrees with the published standard error (rounded to 0.01)
        assert abs(coefs.loc[term, "sd"] - se) <= 0.011, term
    assert abs(coefs.loc["sigma", "mean"] - published["sigma_y"][0]) < 0.02
    assert abs(coefs.loc["sd(county)", "mean"] - published["sigma_county"][0]) < 0.05
    assert effects.loc["total", "mean"] == pytest.approx(coefs.loc["log_uranium", "mean"])
    assert coefs["r_hat"].max() <= 1.01
