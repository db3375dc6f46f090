"""Running the sampler: PyMC's NUTS by default, nutpie or NumPyro (JAX) on request.

:class:`ChainSampler` runs PyMC's NUTS step method on one compiled model, chain by
chain, with seeds from a :class:`numpy.random.SeedSequence`. It is built once per
model and reused: a refit that changes the model's shared variables (new data, the
same shapes or not) samples again without compiling anything, and the same seed
gives the same draws. Chains run in forked worker processes when ``cores > 1``.

May import: numpy, pymc, pytensor, arviz, xarray, vagg_bayes.errors.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from vagg_bayes.errors import MissingExtraError

SAMPLERS = ("nuts", "nutpie", "numpyro")
_EXTRA = {"nutpie": ("nutpie", "nutpie"), "numpyro": ("numpyro", "numpyro")}


@dataclass(frozen=True)
class SamplerSettings:
    """Settings passed to the sampler.

    Attributes
    ----------
    draws, tune, chains : int, default 1000, 1000, 2
    random_seed : int, default 0
    sampler : {"nuts", "nutpie", "numpyro"}, default "nuts"
    target_accept : float, default 0.9
    cores : int or None, default None
        Processes running chains at once; None: one per chain, at most the machine's
        CPU count.
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    random_seed: int = 0
    sampler: str = "nuts"
    target_accept: float = 0.9
    cores: int | None = None

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"sampler must be one of {', '.join(SAMPLERS)}; got {self.sampler!r}."
            )
        for name in ("draws", "tune", "chains"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "tune" else 1):
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def check_sampler_available(sampler: str) -> None:
    """Raise :class:`MissingExtraError` when an optional sampler is not installed."""
    if sampler in _EXTRA:
        package, extra = _EXTRA[sampler]
        if importlib.util.find_spec(package) is None:
            raise MissingExtraError(package, extra, f"--sampler {sampler}")


def run_sampler(model, settings: SamplerSettings, *, var_names: list[str] | None = None):
    """Sample ``model``; returns ``(InferenceData, wall_seconds)``.

    Sampling is quiet (no progress bar); PyMC's own convergence messages are
    replaced by :mod:`vagg_bayes.bayes.diagnostics`.
    """
    import pymc as pm

    check_sampler_available(settings.sampler)
    kwargs = dict(
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        random_seed=settings.random_seed,
        target_accept=settings.target_accept,
        progressbar=False,
        compute_convergence_checks=False,
        return_inferencedata=True,
    )
    if var_names is not None:
        kwargs["var_names"] = var_names
    if settings.sampler == "nuts":
        kwargs["cores"] = chain_processes(settings)
    else:
        kwargs["nuts_sampler"] = settings.sampler
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    start = time.perf_counter()
    try:
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = pm.sample(**kwargs)
    finally:
        logger.setLevel(level)
    return idata, time.perf_counter() - start


def chain_processes(settings: SamplerSettings) -> int:
    """Processes that run chains at once: ``settings.cores`` or one per chain, at most the
    machine's CPU count."""
    return max(1, min(settings.cores or settings.chains, settings.chains, os.cpu_count() or 1))


def seed_sequence(seed) -> np.random.SeedSequence:
    """A :class:`numpy.random.SeedSequence` from an int, a SeedSequence or None (0)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(0 if seed is None else int(seed))


# InferenceData name -> the NUTS step's own name (as pymc.sample renames them)
_STATS = {"diverging": "diverging", "tree_depth": "depth", "n_steps": "tree_size",
          "step_size": "step_size", "energy": "energy", "acceptance_rate": "mean_tree_accept",
          "lp": "model_logp", "reached_max_treedepth": "reached_max_treedepth"}
_ACTIVE: dict = {}  # the sampler whose chains forked workers run (set just before forking)


def _chain_worker(task):
    key, chain, seed = task
    return _ACTIVE[key]._run_chain(chain, seed)


class ChainSampler:
    """PyMC's NUTS on one compiled model, reusable across refits.

    Parameters
    ----------
    model : pymc.Model
        Continuous free variables only.
    target_accept : float, default 0.9

    Notes
    -----
    Building compiles the log density and its gradient (inside the NUTS step) and one
    function from the free variables to every free variable and deterministic on its
    natural scale. :meth:`run` resets the step's adaptation (step size, mass matrix)
    and starts every chain from the model's initial point, so a run depends only on
    the model's shared variables and the seed.
    """

    def __init__(self, model, *, target_accept: float = 0.9):
        import pymc as pm
        import pytensor

        self.model = model
        with model:
            self.step = pm.NUTS(model=model, target_accept=target_accept)
        self.start = model.initial_point()
        values = model.value_vars
        outs = [*model.free_RVs, *model.deterministics]
        self.names = [v.name for v in outs]
        graphs = model.replace_rvs_by_values(outs)
        self._values = values
        self._outputs = pytensor.function(values, graphs, on_unused_input="ignore")

    def _run_chain(self, chain: int, seed: np.random.SeedSequence):
        step = self.step
        tune, draws = self._lengths
        step.set_rng(np.random.default_rng(seed))
        step.tune = bool(tune)
        step.reset_tuning()
        point = dict(self.start)
        kept_points, kept_stats = [], []
        for i in range(tune + draws):
            if i == 0:
                step.iter_count = 0
            if i == tune:
                step.stop_tuning()
            point, stats = step.step(point)
            if i >= tune:
                kept_points.append([point[v.name] for v in self._values])
                st = stats[0] if isinstance(stats, list) else stats
                kept_stats.append([st.get(key, np.nan) for key in _STATS.values()])
        outs = [self._outputs(*p) for p in kept_points]
        arrays = [np.stack([np.asarray(o[k]) for o in outs]) for k in range(len(self.names))]
        return arrays, np.asarray(kept_stats, dtype=float)

    def run(self, settings: SamplerSettings, seed=None):
        """Sample ``settings.chains`` chains; returns ``(InferenceData, wall_seconds)``.

        ``seed`` (int or SeedSequence; default ``settings.random_seed``) is spawned into
        one sequence per chain.
        """
        import arviz as az

        start = time.perf_counter()
        chain_seeds = seed_sequence(settings.random_seed if seed is None else seed).spawn(
            settings.chains)
        self._lengths = (settings.tune, settings.draws)
        procs = chain_processes(settings)
        logger = logging.getLogger("pymc")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            if procs > 1:
                key = id(self)
                _ACTIVE[key] = self
                try:
                    ctx = multiprocessing.get_context("fork")
                    with ctx.Pool(procs) as pool:
                        results = pool.map(_chain_worker, [(key, c, s) for c, s in
                                                           enumerate(chain_seeds)])
                finally:
                    _ACTIVE.pop(key, None)
            else:
                results = [self._run_chain(c, s) for c, s in enumerate(chain_seeds)]
        finally:
            logger.setLevel(level)
        posterior = {name: np.stack([r[0][k] for r in results])
                     for k, name in enumerate(self.names)}
        stats = np.stack([r[1] for r in results])  # (chain, draw, stat)
        sample_stats = {name: stats[..., k] for k, name in enumerate(_STATS)}
        for name in ("diverging", "reached_max_treedepth"):
            sample_stats[name] = sample_stats[name].astype(bool)
        dims = {}
        coords = {}
        for var in [*self.model.free_RVs, *self.model.deterministics]:
            var_dims = self.model.named_vars_to_dims.get(var.name)
            if var_dims:
                dims[var.name] = list(var_dims)
                for d in var_dims:
                    coords[d] = list(self.model.coords[d])
        idata = az.from_dict(posterior=posterior, sample_stats=sample_stats, dims=dims,
                             coords=coords)
        return idata, time.perf_counter() - start
