"""Running the sampler: PyMC's NUTS by default, nutpie or NumPyro (JAX) on request.

May import: pymc, arviz, vagg_bayes.errors.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from dataclasses import asdict, dataclass

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
    cores : int or None, default None (one process per chain, at most the chains)
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
        kwargs["cores"] = settings.cores or min(settings.chains, 2)
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
