"""A comparison's exact refits are kept as they finish; a resumed run reads them back and
ends with the numbers an uninterrupted run gives."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.analysis import Analysis
from vagg_bayes.bayes.diagnostics import ConvergenceWarning
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.compare import compare
from vagg_bayes.compare.cache import RefitCache
from vagg_bayes.spec import Spec

SETTINGS = SamplerSettings(draws=150, tune=150, chains=2, random_seed=4)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(6), 12)
    x = rng.normal(size=g.size)
    y = 0.3 + 0.5 * x + 0.4 * rng.normal(size=6)[g] + rng.normal(size=g.size)
    data = pd.DataFrame({"marché": g, "dosis": x, "ergebnis": y,
                         "noise": rng.normal(size=g.size)})
    specs = {"base": Spec(outcome="ergebnis", treatment="dosis", group="marché"),
             "more": Spec(outcome="ergebnis", treatment="dosis", controls=("noise",),
                          group="marché")}
    analyses = {n: Analysis(s, SETTINGS) for n, s in specs.items()}
    with warnings.catch_warnings():  # tiny draws: only the refits' bookkeeping is tested
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = {n: a.fit(data, tables=False) for n, a in analyses.items()}
    return data, analyses, results


def _run(fitted, cache_dir, resume):
    data, analyses, results = fitted
    # every city counts as flagged (k > -inf): 3 exact refits per model, 6 in all
    return compare(results, data=data, analyses=analyses, k_threshold=-np.inf,
                   reloo_max=3, folds=3, seed=5, cache_dir=cache_dir, resume=resume)


@pytest.mark.slow
def test_resume_reads_finished_refits_and_gives_the_uninterrupted_numbers(fitted, tmp_path):
    whole = _run(fitted, tmp_path / "whole", resume=False)
    files = sorted((tmp_path / "whole").glob("compare-*.json"))
    assert len(files) == 6
    assert (whole.table["method"] == "kfold(3)").all()
    # an "interrupted" run: only the first model's refits and one of the second's finished
    part = tmp_path / "part"
    part.mkdir()
    kept = [f for f in files if f.name.startswith("compare-base-")]
    kept += [f for f in files if f.name.startswith("compare-more-")][:1]
    for f in kept:
        (part / f.name).write_bytes(f.read_bytes())
    (part / ".compare-more-0001-x.json.tmp").write_text("{half")  # left by a kill
    again = _run(fitted, part, resume=True)
    pd.testing.assert_frame_equal(again.table, whole.table)
    assert sorted(p.name for p in part.glob("compare-*.json")) == [f.name for f in files]
    assert not list(part.glob(".*.tmp"))
    # the finished refits are read back, not refitted: a changed record shows in the table
    first = kept[0]
    record = json.loads((part / first.name).read_text())
    unit = next(iter(record["values"]))
    record["values"][unit] += 1.0
    (part / first.name).write_text(json.dumps(record))
    moved = _run(fitted, part, resume=True).table.set_index("model")
    before = whole.table.set_index("model")
    assert moved.loc["base", "elpd_loo"] == pytest.approx(before.loc["base", "elpd_loo"] + 1.0)
    assert moved.loc["more", "elpd_loo"] == before.loc["more", "elpd_loo"]


def test_cache_records_round_trip_and_are_cleared_without_resume(tmp_path):
    cache = RefitCache(tmp_path, resume=False)
    key = {"run": "abc", "left_out": ["Zürich"], "seed": [1, [0]]}
    record = {"values": {"3": -12.345678901234567}, "passed": True}
    cache.save("m/1", 0, key, record)
    assert RefitCache(tmp_path, resume=True).load("m/1", 0, key) == record
    assert RefitCache(tmp_path, resume=True).load("m/1", 0, {**key, "run": "other"}) is None
    assert RefitCache(tmp_path, resume=False).load("m/1", 0, key) is None
    assert not list(tmp_path.glob("compare-*.json"))


def test_an_unreadable_record_warns_and_counts_as_absent(tmp_path):
    cache = RefitCache(tmp_path, resume=True)
    key = {"run": "abc", "left_out": ["Zürich"], "seed": [1, [0]]}
    cache.save("m", 0, key, {"values": {"1": -1.5}})
    path = cache.path("m", 0, key)
    path.write_text("{\"values\": {\"1\": -1.", encoding="utf-8")  # cut short
    with pytest.warns(RuntimeWarning, match=path.name):
        assert cache.load("m", 0, key) is None
    path.write_text("[1, 2]", encoding="utf-8")  # valid JSON, not a record
    with pytest.warns(RuntimeWarning, match="no 'values'"):
        assert cache.load("m", 0, key) is None
    assert cache.counts["cached"] == 0

