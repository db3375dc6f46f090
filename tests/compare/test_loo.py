"""Model comparison on real fits: the Minnesota radon pooling ladder against plain PyMC, and
exact refits (reloo, k-fold) where Pareto k is high."""

import warnings

import numpy as np
import pytest

from vagg_bayes import Analysis
from vagg_bayes.bayes.diagnostics import ConvergenceWarning
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.compare import compare
from vagg_bayes.errors import DataWarning
from vagg_bayes.spec import Spec

RADON = {
    "complete": Spec(outcome="log_radon", treatment="floor"),
    "intercepts": Spec(outcome="log_radon", treatment="floor", group="county"),
    "slopes": Spec(outcome="log_radon", treatment="floor", group="county",
                   varying_slope=True),
}


def _plain_pymc(data, kind, seed):
    """The same model written directly in PyMC (non-centred county effects): draws of
    the intercept, slope, sigma and the county effects, and the per-row log-likelihood."""
    import pymc as pm

    y = data["log_radon"].to_numpy()
    x = data["floor"].to_numpy(dtype=float)
    county, labels = data["county"].factorize(sort=True)
    J = len(labels)
    sy, sx = y.std(), x.std()
    with pm.Model():
        a = pm.Normal("a", y.mean(), 2.5 * sy)
        b = pm.Normal("b", 0, 2.5 * sy / sx)
        sigma = pm.Exponential("sigma", 1 / sy)
        mu = a + b * x
        if kind == "intercepts":
            tau = pm.HalfNormal("tau", sy)
            z = pm.Normal("z", 0, 1, shape=J)
            mu = mu + (tau * z)[county]
        elif kind == "slopes":
            chol, _, _ = pm.LKJCholeskyCov("chol", n=2, eta=2.0,
                                           sd_dist=pm.HalfNormal.dist(sy, shape=2),
                                           compute_corr=True)
            z = pm.Normal("z", 0, 1, shape=(J, 2))
            u = pm.Deterministic("u", z @ chol.T)
            mu = mu + u[county, 0] + u[county, 1] * x
        pm.Normal("y", mu, sigma, observed=y)
        idata = pm.sample(300, tune=300, chains=2, cores=1, random_seed=seed,
                          progressbar=False, compute_convergence_checks=False,
                          idata_kwargs={"log_likelihood": True})
    return idata, county


def _plain_group_loglik(idata, data, county, kind):
    """log p(y_j | a, b, sigma, S) per county, from the dense marginal covariance."""
    post = idata.posterior.stack(s=("chain", "draw"))
    a, b, s = (np.asarray(post[v]) for v in ("a", "b", "sigma"))
    y = data["log_radon"].to_numpy()
    x = data["floor"].to_numpy(dtype=float)
    S = np.zeros((a.size, 2, 2))
    if kind == "intercepts":
        S[:, 0, 0] = np.asarray(post["tau"]) ** 2
    elif kind == "slopes":
        sd = np.asarray(post["chol_stds"]).T  # (draws, 2)
        corr = np.moveaxis(np.asarray(post["chol_corr"]), -1, 0)  # (draws, 2, 2)
        S = sd[:, :, None] * corr * sd[:, None, :]
    out = np.empty((a.size, county.max() + 1))
    for j in range(county.max() + 1):
        rows = county == j
        W = np.column_stack([np.ones(rows.sum()), x[rows]])
        V = s[:, None, None] ** 2 * np.eye(rows.sum()) + W @ S @ W.T
        r = y[rows] - (a[:, None] + b[:, None] * x[rows])
        _, logdet = np.linalg.slogdet(V)
        quad = np.einsum("dn,dn->d", r, np.linalg.solve(V, r[..., None])[..., 0])
        out[:, j] = -0.5 * (rows.sum() * np.log(2 * np.pi) + logdet + quad)
    return out


def _psis(ll):
    import arviz as az
    import xarray as xr

    C, D = 2, ll.shape[0] // 2
    idata = az.InferenceData(log_likelihood=xr.Dataset(
        {"y": (("chain", "draw", "unit"), ll.reshape(C, D, -1))}),
        posterior=xr.Dataset({"c": (("chain", "draw"), np.zeros((C, D)))}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(idata, var_name="y")


@pytest.mark.slow
def test_radon_pooling_ladder_ranks_complete_pooling_last_and_matches_pymc():
    """Gelman & Hill's radon data: complete pooling is last on both LOO units, and each
    model's elpd agrees with the same model fitted by plain PyMC within its SE."""
    from vagg_bayes.datasets import load_radon

    data = load_radon()
    settings = SamplerSettings(draws=500, tune=500, random_seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DataWarning)  # 3 counties of one house (slopes)
        results = {name: Analysis(spec, settings).fit(data) for name, spec in RADON.items()}
    by_unit = {unit: compare(results, unit) for unit in ("group", "row")}
    for unit, c in by_unit.items():
        table = c.table.set_index("model")
        assert table["rank"].idxmax() == "complete", (unit, table)
        assert table.loc["complete", "elpd_diff"] > 2 * table.loc["complete", "dse"], table
    group = by_unit["group"].table.set_index("model")
    row = by_unit["row"].table.set_index("model")
    seen = {}
    for k, kind in enumerate(RADON):
        idata, county = _plain_pymc(data, kind, seed=20 + k)
        rows = np.asarray(idata.log_likelihood["y"]).reshape(-1, len(data))
        plain_row = _psis(rows)
        if kind == "complete":
            groups = np.stack([rows[:, county == j].sum(1) for j in range(county.max() + 1)], 1)
        else:
            groups = _plain_group_loglik(idata, data, county, kind)
        plain_group = _psis(groups)
        seen[kind] = (row.loc[kind, "elpd_loo"], plain_row.elpd_loo,
                      group.loc[kind, "elpd_loo"], plain_group.elpd_loo)
        assert abs(row.loc[kind, "elpd_loo"] - plain_row.elpd_loo) < row.loc[kind, "se"]
        assert abs(group.loc[kind, "elpd_loo"] - plain_group.elpd_loo) < group.loc[kind, "se"]
        # tighter than the SEs: the same model, two samplers and priors of the same scale
        assert abs(row.loc[kind, "elpd_loo"] - plain_row.elpd_loo) < 3.0, seen
        assert abs(group.loc[kind, "elpd_loo"] - plain_group.elpd_loo) < 3.0, seen
    print("elpd (row ours, row PyMC, group ours, group PyMC):", seen)


def _small(n_groups=8, rows=12, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), rows)
    x = rng.normal(size=g.size)
    y = 0.3 + 0.7 * x + 0.6 * rng.normal(size=n_groups)[g] + 0.8 * rng.normal(size=g.size)
    return pd.DataFrame({"shop": g, "lux": x, "sales": y})


@pytest.mark.slow
def test_reloo_and_kfold_refit_flagged_groups():
    """Every group flagged (k threshold below any k): up to reloo_max groups are refitted
    one by one, more by k-fold; the refitted elpd tracks PSIS-LOO."""
    data = _small()
    settings = SamplerSettings(draws=300, tune=300, random_seed=5)
    specs = {"pooled": Spec(outcome="sales", treatment="lux"),
             "grouped": Spec(outcome="sales", treatment="lux", group="shop")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        analyses = {m: Analysis(s, settings) for m, s in specs.items()}
        results = {m: a.fit(data) for m, a in analyses.items()}
        psis = compare(results, "group").table.set_index("model")
        exact = compare(results, "group", data=data, analyses=analyses, k_threshold=-np.inf,
                        reloo_max=8).table.set_index("model")
        kfold = compare(results, "group", data=data, analyses=analyses, k_threshold=-np.inf,
                        reloo_max=2, folds=4).table.set_index("model")
    assert (exact["method"] == "psis+reloo").all() and (exact["n_refits"] == 8).all()
    assert (kfold["method"] == "kfold(4)").all() and (kfold["n_refits"] == 4).all()
    assert (exact["n_high_k"] == 8).all() and not exact["warning"].any()
    for m in specs:
        assert abs(exact.loc[m, "elpd_loo"] - psis.loc[m, "elpd_loo"]) < psis.loc[m, "se"]
        # k-fold leaves out a quarter of the groups at once: somewhat lower, still close
        assert abs(kfold.loc[m, "elpd_loo"] - psis.loc[m, "elpd_loo"]) < 2 * psis.loc[m, "se"]
    assert exact["rank"].idxmin() == "grouped"
