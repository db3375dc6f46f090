"""vagg_bayes: Bayesian causal inference for economic geography.

Does virtual agglomeration make firms' exports more resilient, and through which
mechanisms? Hierarchical Bayesian models (firms within cities), causal graphs for the
mechanism paths, and refutation tests, in one place.
"""

from __future__ import annotations

__version__ = "0.1.0"

from vagg_bayes.errors import (  # noqa: E402
    DataError,
    GraphError,
    MissingExtraError,
    SpecError,
    VaggBayesError,
)
from vagg_bayes.spec import Spec, load_spec, parse_spec  # noqa: E402

__all__ = [
    "__version__",
    "DataError",
    "GraphError",
    "MissingExtraError",
    "Spec",
    "SpecError",
    "VaggBayesError",
    "load_spec",
    "parse_spec",
]
