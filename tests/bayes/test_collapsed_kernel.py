"""The compiled twin of the collapsed log posterior equals the PyTensor graph."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes import collapsed as col
from vagg_bayes.bayes.collapsed_kernel import CollapsedPosterior
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.equations import equation_designs
from vagg_bayes.spec import Spec


def _unbalanced(seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(25), rng.integers(1, 14, 25))  # groups of 1 to 13 rows
    n = g.size
    df = pd.DataFrame({"región": g, "dosis": rng.normal(size=n), "tamaño": rng.normal(size=n)})
    df["éxito"] = (1 + 0.5 * df["dosis"] + rng.normal(size=25)[g]
                   + 0.3 * rng.normal(size=25)[g] * df["dosis"] + rng.normal(size=n))
    return df


@pytest.mark.parametrize("kw", [{}, {"group": "región"},
                                {"group": "región", "varying_slope": True}],
                         ids=["pooled", "intercepts", "slopes"])
def test_value_and_gradient_equal_the_graph(kw):
    import pytensor
    import pytensor.tensor as pt

    df = _unbalanced()
    spec = Spec(outcome="éxito", treatment="dosis", controls=("tamaño",), **kw)
    design = equation_designs(df, spec)[0]["outcome"]
    stats = col.group_statistics(design)
    a, pri = col._stat_arrays(stats), col._prior_arrays(default_priors(design, "gaussian"))
    p, q = design.p, len(design.varying)
    k = len(col._unconstrained_layout(p, q))
    rng = np.random.default_rng(1)
    m = 0.3 * rng.normal(size=k)
    C = np.eye(k) + 0.1 * rng.normal(size=(k, k))
    w = pt.dvector("w")
    lp = col._unconstrained_logp(m + pt.dot(C, w), a, pri, p, q)[0]
    graph = pytensor.function([w], [lp, pt.grad(lp, w)])
    twin = CollapsedPosterior(a, pri, q)
    twin.set_whitening(m, C)
    points = [rng.normal(size=k) for _ in range(6)]
    points.append(np.linalg.solve(C, -m) + np.r_[np.zeros(k - 1), 12.0])  # corr near 1
    points.append(np.linalg.solve(C, np.r_[np.zeros(p + 1), [-9.0] * q,
                                          [0.0] * (q == 2)] - m))  # tiny group SDs
    for x in points:
        lp_g, grad_g = graph(x)
        lp_t, grad_t = twin(x)
        assert lp_t == pytest.approx(float(lp_g), rel=1e-11, abs=1e-9)
        np.testing.assert_allclose(grad_t, grad_g, rtol=1e-8, atol=1e-8 * np.abs(grad_g).max())
    # without whitening (the mode search's function)
    lp_u, grad_u = twin.unwhitened(m)
    v = pt.dvector("v")
    lpv = col._unconstrained_logp(v, a, pri, p, q)[0]
    lp_g, grad_g = pytensor.function([v], [lpv, pt.grad(lpv, v)])(m)
    assert lp_u == pytest.approx(float(lp_g), rel=1e-11)
    np.testing.assert_allclose(grad_u, grad_g, rtol=1e-8)


def test_a_built_model_carries_a_twin_that_follows_its_data():
    df = _unbalanced(2)
    spec = Spec(outcome="éxito", treatment="dosis", controls=("tamaño",), group="región",
                varying_slope=True)
    design = equation_designs(df, spec)[0]["outcome"]
    model = col.build_collapsed_model(design, default_priors(design, "gaussian"))
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    point = model.initial_point()
    point["w"] = np.linspace(-0.5, 0.5, point["w"].size)
    lp, g = model.fast_logp_dlogp(point["w"])
    # the Flat prior on w adds nothing: the model's density is the Potential
    assert lp == pytest.approx(float(logp(point)), rel=1e-11)
    np.testing.assert_allclose(g, dlogp(point), rtol=1e-8)
    shuffled = df.assign(dosis=np.random.default_rng(3).permutation(df["dosis"].to_numpy()))
    model.update_data(equation_designs(shuffled, spec)[0]["outcome"])
    lp2, g2 = model.fast_logp_dlogp(point["w"])
    assert lp2 != pytest.approx(lp)
    assert lp2 == pytest.approx(float(logp(point)), rel=1e-11)
    np.testing.assert_allclose(g2, dlogp(point), rtol=1e-8)
