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
from dataclasses import asdict, dataclass, replace

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
    warm_tune : int, default 150
        Tuning iterations of a warm-started run (PyMC's NUTS only). A fit first adapts
        the step size and the mass matrix for ``tune`` iterations, then samples from
        that adaptation with ``warm_tune`` more tuning iterations (step size only) and
        ``draws`` draws; a refit reuses the first adaptation and runs only the second
        stage. Capped at ``tune``.
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    random_seed: int = 0
    sampler: str = "nuts"
    target_accept: float = 0.9
    cores: int | None = None
    warm_tune: int = 150

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"sampler must be one of {', '.join(SAMPLERS)}; got {self.sampler!r}."
            )
        for name in ("draws", "tune", "chains", "warm_tune"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if "tune" in name else 1):
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


def child_seed(seed: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """The ``k``-th child of ``seed``, the same however often it is asked for (unlike
    :meth:`~numpy.random.SeedSequence.spawn`, which counts its calls)."""
    return np.random.SeedSequence(entropy=seed.entropy, spawn_key=(*seed.spawn_key, k))


#: child of a run's seed that seeds its first (cold) adaptation
_ADAPT_CHILD = 0xADA
#: PyMC's NUTS evaluates a model's compiled twin of its log density
#: (``model.fast_logp_dlogp``, same values) instead of the PyTensor graph when the model
#: has one; False always uses the graph (benchmarks compare the two)
COMPILED_TWIN = True

# InferenceData name -> the NUTS step's own name (as pymc.sample renames them)
_STATS = {"diverging": "diverging", "tree_depth": "depth", "n_steps": "tree_size",
          "step_size": "step_size", "energy": "energy", "acceptance_rate": "mean_tree_accept",
          "lp": "model_logp", "reached_max_treedepth": "reached_max_treedepth"}
_ACTIVE: dict = {}  # the sampler whose chains forked workers run (set just before forking)


@dataclass(frozen=True, eq=False)
class Adaptation:
    """What a cold tuning phase learned, one entry per chain.

    Attributes
    ----------
    variances : tuple of ndarray
        Diagonal of the mass matrix (posterior variances in the sampler's coordinates).
    step_sizes : tuple of float
        The dual-averaged step size at the end of tuning.
    points : tuple of dict
        The last point of each chain (the warm run starts there).
    """

    variances: tuple
    step_sizes: tuple
    points: tuple

    @property
    def size(self) -> int:
        """Number of unconstrained parameters."""
        return int(self.variances[0].size)


def ignore_sigint() -> None:
    """Initializer of forked workers: Ctrl-C is the parent's to handle.

    The parent's ``KeyboardInterrupt`` leaves its ``with Pool`` block, which terminates
    the workers. A worker that raised ``KeyboardInterrupt`` itself would die inside its
    task, and the pool would start a replacement and wait forever for the lost result.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _chain_worker(task):
    key, method, args = task
    return getattr(_ACTIVE[key], method)(*args)


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
    natural scale.

    Sampling has two stages. :meth:`adapt` runs ``tune`` iterations from the model's
    initial point with PyMC's usual adaptation (dual-averaged step size, diagonal mass
    matrix from windowed variances) and keeps what each chain learned
    (:class:`Adaptation`). :meth:`run` starts each chain from its adapted point, mass
    matrix and step size, tunes the step size for ``warm_tune`` iterations and draws.
    A fit does both; a refit on changed data reuses the first fit's adaptation (the
    models are whitened per data set, so what was learned carries over) and runs only
    the second stage, about a third of a cold run's work. A run depends only on the
    model's shared variables, the adaptation and the seed: a refit on the first data
    with the first seed gives the first fit's draws exactly.
    """

    def __init__(self, model, *, target_accept: float = 0.9):
        import pymc as pm
        import pytensor

        self.model = model
        self.target_accept = target_accept
        with model:
            self.step = pm.NUTS(model=model, target_accept=target_accept)
        # The step always passes one contiguous float64 vector: skip input checks.
        self.step._logp_dlogp_func._pytensor_function.trust_input = True
        self._adaptive = (self.step.potential, self.step.step_adapt)
        self.start = model.initial_point()
        values = model.value_vars
        outs = [*model.free_RVs, *model.deterministics]
        self.names = [v.name for v in outs]
        graphs = model.replace_rvs_by_values(outs)
        self._values = values
        self._outputs = pytensor.function(values, graphs, on_unused_input="ignore")
        self.size = int(sum(np.asarray(v).size for v in self.start.values()))

    # ------------------------------------------------------------------ one chain
    def _use(self, potential, step_adapt, rng) -> None:
        from pymc.step_methods.hmc.integration import CpuLeapfrogIntegrator

        step = self.step
        step.potential = potential
        step.step_adapt = step_adapt
        step.integrator = CpuLeapfrogIntegrator(potential, step._logp_dlogp_func)
        fast = getattr(self.model, "fast_logp_dlogp", None) if COMPILED_TWIN else None
        if fast is not None:  # the model's compiled twin of its graph (same values)
            step.integrator._logp_dlogp_func = lambda q, _info: fast(q)
        step.set_rng(rng)
        step.step_adapt.reset()
        step.reset()

    def _adapt_chain(self, chain: int, seed: np.random.SeedSequence):
        """Cold tuning of one chain: ``(variance, step size, last point)``."""
        step = self.step
        tune = self._lengths[0]
        self._use(*self._adaptive, np.random.default_rng(seed))
        point = dict(self.start)
        for _ in range(tune):
            point, _stats = step.step(point)
        # The adapted diagonal and the averaged step size (what PyMC's own draws would use).
        variance = np.array(step.potential._var, dtype=float, copy=True)
        return variance, float(step.step_adapt.current(False)), point

    def _run_chain(self, chain: int, seed: np.random.SeedSequence, variance, step_size,
                   point):
        from pymc.step_methods.hmc.quadpotential import QuadPotentialDiag

        step = self.step
        tune, draws = self._lengths[1:]
        potential = QuadPotentialDiag(np.asarray(variance, dtype=float))
        self._use(potential,
                  _WarmDualAverage(step_size, self.target_accept),
                  np.random.default_rng(seed))
        step.tune = bool(tune)
        point = dict(point)
        kept_points, kept_stats = [], []
        for i in range(tune + draws):
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

    def _map(self, method: str, tasks: list, procs: int) -> list:
        if procs > 1 and len(tasks) > 1:
            key = id(self)
            _ACTIVE[key] = self
            try:
                ctx = multiprocessing.get_context("fork")
                with ctx.Pool(min(procs, len(tasks)), initializer=ignore_sigint) as pool:
                    return pool.map(_chain_worker, [(key, method, t) for t in tasks])
            finally:
                _ACTIVE.pop(key, None)
        return [getattr(self, method)(*t) for t in tasks]

    # ------------------------------------------------------------------ stages
    def adapt(self, settings: SamplerSettings, seed=None) -> Adaptation:
        """Cold adaptation: ``settings.tune`` iterations per chain from the initial point.

        ``seed`` (int or SeedSequence; default ``settings.random_seed``): chain ``c``
        uses child ``c`` of the seed's child ``0xADA``.
        """
        seed = seed_sequence(settings.random_seed if seed is None else seed)
        base = child_seed(seed, _ADAPT_CHILD)
        self._lengths = (settings.tune, 0, 0)
        if settings.tune == 0:
            initial = float(self._adaptive[1].current(True))
            return Adaptation(tuple(np.ones(self.size) for _ in range(settings.chains)),
                              (initial,) * settings.chains,
                              tuple(dict(self.start) for _ in range(settings.chains)))
        tasks = [(c, child_seed(base, c)) for c in range(settings.chains)]
        with _quiet_pymc():
            out = self._map("_adapt_chain", tasks, chain_processes(settings))
        return Adaptation(*(tuple(part) for part in zip(*out, strict=True)))

    def run(self, settings: SamplerSettings, seed=None, adaptation: Adaptation | None = None):
        """Sample ``settings.chains`` chains; returns ``(InferenceData, wall_seconds,
        adaptation)``.

        Without ``adaptation`` the chains are adapted first (:meth:`adapt`); with one
        (from an earlier run of a model of the same size), only the warm stage runs.
        ``seed`` (int or SeedSequence; default ``settings.random_seed``): chain ``c``
        of the warm stage uses the seed's child ``c``.
        """
        import arviz as az

        start = time.perf_counter()
        seed = seed_sequence(settings.random_seed if seed is None else seed)
        if adaptation is None or adaptation.size != self.size or \
                len(adaptation.step_sizes) < settings.chains:
            adaptation = self.adapt(settings, seed)
        self._lengths = (0, min(settings.warm_tune, settings.tune), settings.draws)
        tasks = [(c, child_seed(seed, c), adaptation.variances[c], adaptation.step_sizes[c],
                  adaptation.points[c]) for c in range(settings.chains)]
        with _quiet_pymc():
            results = self._map("_run_chain", tasks, chain_processes(settings))
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
        return idata, time.perf_counter() - start, adaptation


def run_seeded(model, sampler: ChainSampler | None, settings: SamplerSettings, seed,
               adaptation: Adaptation | None = None):
    """Sample ``model`` with child 0 of ``seed``: ``(InferenceData, wall, adaptation)``.

    With a :class:`ChainSampler` (PyMC's NUTS) the chains start from ``adaptation`` when
    given (a warm refit) and the run's adaptation is returned; otherwise (nutpie,
    NumPyro) ``pymc.sample`` runs with an integer seed drawn from that child, and the
    adaptation is None. Every fit of an :class:`~vagg_bayes.bayes.fit.EquationModel` and
    of a jointly fitted pair goes through here, so replicates never share a seed.
    """
    seed = seed_sequence(seed)
    if sampler is not None:
        return sampler.run(settings, child_seed(seed, 0), adaptation)
    state = int(child_seed(seed, 0).generate_state(1)[0] % (2**31))
    idata, wall = run_sampler(model, replace(settings, random_seed=state))
    return idata, wall, None


class _quiet_pymc:
    """Silence PyMC's logger (its convergence messages are replaced by ours)."""

    def __enter__(self):
        self._logger = logging.getLogger("pymc")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)


def _WarmDualAverage(step_size: float, target: float):
    """PyMC's dual averaging of the step size, shrunk towards a known good step size
    (PyMC's cold default shrinks towards ten times its initial guess)."""
    from pymc.step_methods.step_sizes import DualAverageAdaptation

    class WarmDualAverage(DualAverageAdaptation):
        def reset(self):
            super().reset()
            self._mu = np.log(self._initial_step)

    # PyMC's NUTS defaults: gamma=0.05, k=0.75, t0=10.
    return WarmDualAverage(step_size, target, 0.05, 0.75, 10)
