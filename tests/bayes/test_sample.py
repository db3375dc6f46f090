"""Sampler selection: the optional samplers fail early, with the install line, when missing."""

import importlib.util

import pytest

from vagg_bayes.bayes.sample import SAMPLERS, SamplerSettings, check_sampler_available
from vagg_bayes.errors import MissingExtraError, VaggBayesError


@pytest.fixture
def hide(monkeypatch):
    """Make ``find_spec`` report the given top-level packages as not installed."""

    def _hide(*names):
        real = importlib.util.find_spec

        def fake(name, *args, **kwargs):
            if name.split(".")[0] in names:
                return None
            return real(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", fake)

    return _hide


@pytest.mark.parametrize("sampler", ["nutpie", "numpyro"])
def test_missing_optional_sampler_names_the_extra(hide, sampler):
    hide(sampler)
    with pytest.raises(MissingExtraError) as info:
        check_sampler_available(sampler)
    message = str(info.value)
    assert f"pip install 'vagg-bayes[{sampler}]'" in message
    assert f"--sampler {sampler}" in message
    assert isinstance(info.value, ImportError) and isinstance(info.value, VaggBayesError)


def test_default_sampler_needs_no_extra(hide):
    hide("nutpie", "numpyro", "jax")
    check_sampler_available("nuts")  # no error


def test_run_sampler_checks_before_sampling(hide):
    from vagg_bayes.bayes.sample import run_sampler

    hide("numpyro")
    with pytest.raises(MissingExtraError, match=r"vagg-bayes\[numpyro\]"):
        run_sampler(object(), SamplerSettings(sampler="numpyro"))


def test_cli_reports_missing_sampler_with_exit_2(hide, tmp_path, capsys):
    from vagg_bayes.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text('[variables]\noutcome = "y"\ntreatment = "x"\n')
    data = tmp_path / "data.csv"
    data.write_text("y,x\n" + "".join(f"{i % 3},{i % 2}\n" for i in range(20)))
    hide("numpyro")
    code = main(["estimate", str(spec), "--data", str(data), "--out", str(tmp_path / "out"),
                 "--sampler", "numpyro"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'vagg-bayes[numpyro]'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unknown_sampler_is_rejected():
    with pytest.raises(ValueError, match="sampler must be one of"):
        SamplerSettings(sampler="hmc")
    assert SAMPLERS == ("nuts", "nutpie", "numpyro")


@pytest.mark.parametrize("sampler", ["nutpie", "numpyro"])
def test_optional_sampler_is_passed_to_pymc(monkeypatch, sampler):
    """``run_sampler`` hands the sampler's name to ``pm.sample`` (no sampling here)."""
    import pymc as pm

    from vagg_bayes.bayes.sample import run_sampler

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: object())
    seen = {}

    def fake_sample(**kwargs):
        seen.update(kwargs)
        return "idata"

    monkeypatch.setattr(pm, "sample", fake_sample)
    with pm.Model() as model:
        pm.Normal("a")
    idata, _ = run_sampler(model, SamplerSettings(sampler=sampler, draws=5, tune=5))
    assert idata == "idata"
    assert seen["nuts_sampler"] == sampler
    assert "cores" not in seen


def test_replicates_of_an_external_sampler_get_their_own_seeds(monkeypatch):
    """``run_seeded`` without a ChainSampler (nutpie, NumPyro): the integer seed handed to
    ``pm.sample`` comes from the replicate's SeedSequence, the same for the same seed and
    different for different replicates (no shared fixed seed)."""
    import numpy as np
    import pymc as pm

    from vagg_bayes.bayes.sample import run_seeded

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: object())
    seeds = []
    monkeypatch.setattr(pm, "sample", lambda **kw: seeds.append(kw["random_seed"]) or "idata")
    with pm.Model() as model:
        pm.Normal("a")
    settings = SamplerSettings(sampler="nutpie", draws=5, tune=5, random_seed=3)
    replicates = np.random.SeedSequence(3).spawn(3)
    for seed in [*replicates, replicates[0]]:
        idata, _, adaptation = run_seeded(model, None, settings, seed)
        assert idata == "idata" and adaptation is None
    assert seeds[0] == seeds[3] and len(set(seeds[:3])) == 3
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
