"""`vagg-bayes measure resilience|index`: the files it writes are the measures' own tables.

Bad input exits 2 with one paragraph naming the file and the column, and writes nothing.
"""

import json

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.cli import main
from vagg_bayes.measures import entropy_index, firm_resilience


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.fixture
def exports_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f, f % 3, 100 + f % 5, y, float(rng.lognormal(4, 1)))
            for f in range(40) for y in range(2006, 2012)]
    df = pd.DataFrame(rows, columns=["firm", "sector", "city", "yr", "value"])
    path = tmp_path / "exports.csv"
    df.to_csv(path, index=False)
    return path, df


@pytest.fixture
def indicators_file(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"city": np.repeat(np.arange(10), 2), "year": np.tile([2019, 2020], 10),
                       "net": rng.lognormal(size=20), "soft": rng.gamma(2.0, size=20),
                       "offline": rng.uniform(0.1, 0.6, 20)})
    path = tmp_path / "ind.csv"
    df.to_csv(path, index=False)
    return path, df


RES = ["--firm", "firm", "--industry", "sector", "--year", "yr", "--exports", "value"]


def test_resilience_writes_the_measures(exports_file, tmp_path, capsys):
    path, df = exports_file
    out = tmp_path / "out"
    code, stdout, _ = run(["measure", "resilience", "--data", path, "--out", out, *RES,
                           "--shock-years", "2008,2010", "--form", "logdiff", "--annual",
                           "--city", "city", "--counterfactual", "--draws", "50"], capsys)
    assert code == 0
    written = pd.read_csv(out / "resilience.csv", keep_default_na=False,
                          na_values=[""])
    expected = firm_resilience(df, firm="firm", industry="sector", year="yr",
                               exports="value", shock_years=[2008, 2010], form="logdiff")
    np.testing.assert_allclose(written["resistance"], expected["resistance"], rtol=1e-12)
    np.testing.assert_allclose(written["recovery"], expected["recovery"], rtol=1e-12)
    assert list(written.columns) == list(expected.columns)
    for name in ("resilience_annual.csv", "city_resilience.csv", "counterfactual.csv"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "measure_manifest.json").read_text())
    assert manifest["command_line"][:3] == ["vagg-bayes", "measure", "resilience"]
    assert manifest["files"]["resilience.csv"] == len(expected)
    assert "resilience.csv" in stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files


def test_index_writes_index_and_weights(indicators_file, tmp_path, capsys):
    path, df = indicators_file
    out = tmp_path / "out"
    code, stdout, _ = run(["measure", "index", "--data", path, "--out", out,
                           "--indicators", "net,soft,offline", "--negative", "offline",
                           "--name", "va"], capsys)
    assert code == 0
    index, weights = entropy_index(df, indicators=["net", "soft", "offline"],
                                   negative=["offline"])
    table = pd.read_csv(out / "index.csv")
    assert list(table.columns) == ["city", "year", "va"]
    np.testing.assert_allclose(table["va"], index, rtol=1e-12)
    w = pd.read_csv(out / "index_weights.csv").set_index("indicator")["weight"]
    np.testing.assert_allclose(w[weights.index], weights, rtol=1e-12)
    code, _, _ = run(["measure", "index", "--data", path, "--out", tmp_path / "by",
                      "--indicators", "net,soft", "--by", "year"], capsys)
    assert code == 0
    assert list(pd.read_csv(tmp_path / "by" / "index_weights.csv")["year"]) == [2019, 2020]


@pytest.mark.parametrize("change, extra, words", [
    (None, ["--exports", "exportz"], ["exports.csv", "'exportz'", "--exports"]),
    (lambda d: d.assign(value=-d.value), [], ["exports.csv", "'value'", "negative"]),
    (lambda d: pd.concat([d, d.iloc[[3]]]), [], ["exports.csv", "duplicate", "'firm'"]),
    (lambda d: d.assign(value=d.value.astype(object).where(d.index != 5, "12,5")), [],
     ["exports.csv", "'value'", "numeric", "12,5"]),
    (None, ["--shock-years", "1999"], ["exports.csv", "1999", "--shock-years"]),
])
def test_resilience_bad_input_exit_2(exports_file, tmp_path, capsys, change, extra, words):
    path, df = exports_file
    if change is not None:
        change(df).to_csv(path, index=False)
    args = ["measure", "resilience", "--data", path, "--out", tmp_path / "o", *RES,
            "--shock-years", "2008"]
    if extra:
        flag = extra[0]
        i = args.index(flag)
        args[i + 1] = extra[1]
    code, _, err = run(args, capsys)
    assert code == 2
    message = err.strip()
    assert message.startswith("vagg-bayes: error:") and "\n" not in message
    for word in words:
        assert word in message, (word, message)
    assert not (tmp_path / "o").exists()  # nothing written


def test_index_bad_input_exit_2(indicators_file, tmp_path, capsys):
    path, df = indicators_file
    df.assign(soft=1.0).to_csv(path, index=False)
    code, _, err = run(["measure", "index", "--data", path, "--out", tmp_path / "o",
                        "--indicators", "net,soft"], capsys)
    assert code == 2 and "ind.csv" in err and "'soft'" in err and "constant" in err
    code, _, err = run(["measure", "index", "--data", tmp_path / "nope.csv", "--out",
                        tmp_path / "o", "--indicators", "net"], capsys)
    assert code == 2 and "nope.csv" in err


def test_argument_errors_exit_2(exports_file, tmp_path, capsys):
    path, _ = exports_file
    for bad in (["--shock-years", "2008,x"], ["--shock-years", "2008", "--winsorize", "0.9,0.1"],
                ["--shock-years", "2008", "--form", "pct"]):
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in ["measure", "resilience", "--data", path, "--out",
                                   tmp_path / "o", *RES, *bad]])
        assert info.value.code == 2
        assert "Traceback" not in capsys.readouterr().err
