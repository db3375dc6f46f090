"""The refit runner: serial, forked and Dask runs agree; failures are counted; resume."""

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.refute.common import refit_seeds
from vagg_bayes.refute.runner import (
    RefitRunner,
    RefitSummary,
    Variant,
    make_tasks,
    sequential_chains,
)
from vagg_bayes.refute.transforms import AddNormal, KeepGroups, ReassignSeries, seed_key
from vagg_bayes.spec import Spec


class FakeAnalysis:
    """Stands in for a fitted Analysis.

    ``refit`` is a deterministic function of the data and the seed, and raises when the
    group ``boom`` is missing from the data.
    """

    def __init__(self, boom=None):
        self.spec = Spec(outcome="y", treatment="x", group="g")
        self.settings = SamplerSettings(draws=10, tune=10, random_seed=1)
        self.boom = boom  # a group whose absence makes refit raise
        self.calls = 0

    def refit(self, data, *, seed):
        self.calls += 1
        if self.boom is not None and self.boom not in set(data["g"]):
            raise ValueError(f"no group {self.boom}")
        rng = np.random.default_rng(seed)
        slope = float(np.polyfit(data["x"], data["y"], 1)[0])
        draws = slope + 0.01 * rng.standard_normal((2, 50))
        return SimpleNamespace(effect_draws={"total": draws},
                               diagnostics=SimpleNamespace(passed=True),
                               meta={"n_rows": len(data), "n_groups": data["g"].nunique()})


def _data():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 10)
    x = rng.normal(size=6)[g] + rng.normal(size=60)
    return pd.DataFrame({"g": g, "t": np.tile(np.arange(10), 6), "x": x,
                         "y": 0.5 * x + rng.normal(size=60)})


def _tasks(n=6):
    transforms = [KeepGroups("g", (k,), keep=False) for k in range(n)]
    return make_tasks("loo", refit_seeds(3, "loo", n), transforms)


def test_serial_and_forked_runs_give_the_same_summaries_in_task_order():
    data = _data()
    serial = RefitRunner(FakeAnalysis(), data, progress=False).run(_tasks())
    forked = RefitRunner(FakeAnalysis(), data, workers=2, progress=False).run(_tasks())
    assert [s.index for s in forked] == list(range(6))
    for a, b in zip(serial, forked, strict=True):
        assert a.effects == b.effects
        assert a.n_rows == 50 and a.ok
    # different data give different numbers (the summaries are not constants)
    assert len({s.mean("total") for s in serial}) == 6


def test_a_failed_refit_is_reported_and_the_others_go_on():
    runner = RefitRunner(FakeAnalysis(boom=2), _data(), workers=2, progress=False)
    out = runner.run(_tasks())
    assert [s.ok for s in out] == [True, True, False, True, True, True]
    assert "ValueError: no group 2" in out[2].error
    assert runner.counts["failed"] == 1
    assert np.isnan(out[2].mean("total"))


def test_resume_reads_finished_refits_and_refits_only_the_rest(tmp_path):
    data = _data()
    tasks = _tasks()
    first = FakeAnalysis()
    RefitRunner(first, data, cache_dir=tmp_path, progress=False).run(tasks[:4])
    assert first.calls == 4 and len(list(tmp_path.glob("*.json"))) == 4
    again = FakeAnalysis()
    runner = RefitRunner(again, data, cache_dir=tmp_path, resume=True, progress=False)
    resumed = runner.run(tasks)
    assert again.calls == 2  # only the two unfinished ones
    assert runner.counts == {"run": 2, "cached": 4, "failed": 0}
    assert [s.cached for s in resumed] == [True] * 4 + [False] * 2
    whole = RefitRunner(FakeAnalysis(), data, progress=False).run(tasks)
    for a, b in zip(resumed, whole, strict=True):
        assert a.effects == b.effects  # floats survive the JSON round trip exactly


def test_an_unreadable_cached_refit_is_refitted_with_a_warning(tmp_path):
    data = _data()
    tasks = _tasks(3)
    RefitRunner(FakeAnalysis(), data, cache_dir=tmp_path, progress=False).run(tasks)
    damaged = sorted(tmp_path.glob("*.json"))[1]
    damaged.write_text('{"effects": {"total": [0.1', encoding="utf-8")  # cut short
    again = FakeAnalysis()
    runner = RefitRunner(again, data, cache_dir=tmp_path, resume=True, progress=False)
    with pytest.warns(RuntimeWarning, match=damaged.name):
        resumed = runner.run(tasks)
    assert again.calls == 1 and runner.counts["cached"] == 2
    whole = RefitRunner(FakeAnalysis(), data, progress=False).run(tasks)
    assert [a.effects for a in resumed] == [b.effects for b in whole]


def test_without_resume_the_cache_is_cleared_and_other_data_never_match(tmp_path):
    data = _data()
    RefitRunner(FakeAnalysis(), data, cache_dir=tmp_path, progress=False).run(_tasks(3))
    other = data.assign(y=data["y"] + 1)
    fake = FakeAnalysis()
    RefitRunner(fake, other, cache_dir=tmp_path, resume=True, progress=False).run(_tasks(3))
    assert fake.calls == 3  # the cache belongs to other data
    fake = FakeAnalysis()
    RefitRunner(fake, other, cache_dir=tmp_path, progress=False).run(_tasks(3))
    assert fake.calls == 3 and len(list(tmp_path.glob("*.json"))) == 3


def test_failed_refits_are_not_cached_and_are_tried_again_on_resume(tmp_path):
    data = _data()
    RefitRunner(FakeAnalysis(boom=1), data, cache_dir=tmp_path, progress=False).run(_tasks(3))
    assert len(list(tmp_path.glob("*.json"))) == 2
    fake = FakeAnalysis()
    out = RefitRunner(fake, data, cache_dir=tmp_path, resume=True, progress=False).run(
        _tasks(3))
    assert fake.calls == 1 and all(s.ok for s in out)


def test_summary_json_round_trip_and_task_fingerprints():
    summary = RefitSummary("t", 2, {"total": {"mean": 0.1, "sd": 0.2, "hdi_low": -0.3,
                                               "hdi_high": 0.4}},
                           {"total": np.array([0.1, 1 / 3])}, True, 1.5)
    back = RefitSummary.from_json(json.loads(json.dumps(summary.to_json())))
    assert back.effects == summary.effects and back.draws["total"][1] == 1 / 3
    seeds = refit_seeds(0, "x", 2)
    a = make_tasks("x", seeds, [AddNormal("r", seed_key(seeds[0]))] * 2)
    b = make_tasks("x", seeds, [AddNormal("r", seed_key(seeds[1]))] * 2)
    assert a[0].fingerprint() != a[1].fingerprint()  # the refit seed differs
    assert a[0].fingerprint() != b[0].fingerprint()  # the transform differs
    donors = ReassignSeries("x", "g", "t", ((0, 1), (1, 0)))
    same = ReassignSeries("x", "g", "t", ((0, 1), (1, 0)))
    assert donors.fingerprint() == same.fingerprint()


def test_sequential_chains_sets_one_core_everywhere():
    model = SimpleNamespace(settings=SamplerSettings(cores=2))
    analysis = SimpleNamespace(settings=SamplerSettings(cores=None), _models={"y": model})
    sequential_chains(analysis)
    assert analysis.settings.cores == 1 and model.settings.cores == 1


def test_no_progress_bar_off_a_terminal(capsys):
    RefitRunner(FakeAnalysis(), _data(), progress=None).run(_tasks(2))
    assert "refit" not in capsys.readouterr().err


# ---------------------------------------------------------------- real refits
@pytest.fixture(scope="module")
def small_fit(firm_panel_factory):
    from vagg_bayes.analysis import Analysis

    data, _ = firm_panel_factory(n_towns=6, n_plants=6, n_periods=4, seed=5)
    spec = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",), group="town",
                time="period", group_time_effects=False)
    analysis = Analysis(spec, SamplerSettings(draws=150, tune=200, chains=2, random_seed=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis.fit(data, tables=False)
    return analysis, data


@pytest.mark.slow
def test_forked_workers_and_a_dask_cluster_reproduce_the_serial_refits(small_fit):
    from distributed import LocalCluster

    analysis, data = small_fit
    donors = [((0, 1), (1, 0)), ((2, 3), (3, 2))]
    tasks = make_tasks("placebo", refit_seeds(0, "placebo", 2),
                       [ReassignSeries("dig", "town", "period", d) for d in donors])
    variant = Variant("rcc", analysis.spec.with_(controls=("scale_ln", "rc")),
                      AddNormal("rc", seed_key(np.random.SeedSequence(9))))
    tasks.append(make_tasks("rcc", refit_seeds(0, "rcc", 1), [None], variant=variant)[0])
    runner = RefitRunner(analysis, data, progress=False)
    serial = runner.run(tasks)
    runner.workers = 2  # the same state: the variant fitted above is inherited
    forked = runner.run(tasks)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        with RefitRunner(analysis, data, scheduler=cluster.scheduler_address,
                         progress=False) as runner:
            remote = runner.run(tasks[:2])  # the worker fits the analysis itself first
    assert all(s.ok for s in serial), [s.error for s in serial]
    for a, b in zip(serial, forked, strict=True):
        assert a.effects == b.effects
    for a, c in zip(serial, remote, strict=False):
        assert a.effects == c.effects
    assert serial[0].mean("total") != serial[1].mean("total")


def test_an_unreachable_scheduler_is_a_clear_error():
    from vagg_bayes.refute import RefutationError
    from vagg_bayes.refute.runner import check_scheduler

    with pytest.raises(RefutationError, match="Cannot reach the Dask scheduler at "
                                              "--scheduler tcp://127.0.0.1:9"):
        check_scheduler("tcp://127.0.0.1:9", timeout=1)
