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


def __getattr__(name: str):
    """Lazy public surface: importing vagg_bayes stays fast (PyMC loads on first use)."""
    lazy = {
        "simulate_panel": "vagg_bayes.data.simulate",
        "simulate_raw": "vagg_bayes.data.raw",
        "build_indices": "vagg_bayes.measures",
        "firm_resilience": "vagg_bayes.measures",
        "entropy_index": "vagg_bayes.measures",
        "load_panel": "vagg_bayes.data.panel",
        "read_table": "vagg_bayes.data.panel",
        "validate_panel": "vagg_bayes.data.panel",
        "estimate": "vagg_bayes.pipeline",
        "Analysis": "vagg_bayes.analysis",
        "SamplerSettings": "vagg_bayes.bayes.sample",
        "EstimateResult": "vagg_bayes.report.result",
        "load_graph": "vagg_bayes.graph",
        "identify": "vagg_bayes.graph",
        "compare_specs": "vagg_bayes.compare",  # compare(): vagg_bayes.compare.compare
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'vagg_bayes' has no attribute {name!r}")

__all__ = [
    "__version__",
    "Analysis",
    "EstimateResult",
    "SamplerSettings",
    "compare_specs",
    "estimate",
    "identify",
    "load_graph",
    "load_panel",
    "read_table",
    "simulate_panel",
    "simulate_raw",
    "build_indices",
    "firm_resilience",
    "entropy_index",
    "validate_panel",
    "DataError",
    "GraphError",
    "MissingExtraError",
    "Spec",
    "SpecError",
    "VaggBayesError",
    "load_spec",
    "parse_spec",
]
