"""Refutation tests of the Bayesian estimate, and the suite that runs them.

>>> from vagg_bayes.refute import refute, Options                    # doctest: +SKIP
>>> table = refute(analysis, panel, tests="placebo_permute_groups",
...                options=Options(placebos=200, workers=2), out="results")  # doctest: +SKIP
>>> table.summary()                                                  # doctest: +SKIP

Importing this package registers every test in :data:`REGISTRY`: the refit-based ones
(:mod:`~vagg_bayes.refute.placebo`, :mod:`~vagg_bayes.refute.resample`) and those of
the modules in :data:`TEST_MODULES` that exist (a module not yet written is skipped).

May import: vagg_bayes.refute.* (its test modules, eagerly; each imports its heavy
libraries lazily), importlib.
"""

from __future__ import annotations

import importlib

from vagg_bayes.refute.base import (
    REGISTRY,
    Context,
    Options,
    Outcome,
    RefutationError,
    Row,
    register,
    rows_frame,
)

#: modules whose import registers tests (optional ones may be absent)
TEST_MODULES = (
    "vagg_bayes.refute.placebo",
    "vagg_bayes.refute.resample",
    "vagg_bayes.refute.confounding",
    "vagg_bayes.refute.graph_tests",
    "vagg_bayes.refute.prior",
    "vagg_bayes.refute.ppc",
    "vagg_bayes.refute.dowhy_bridge",
)
_REQUIRED = {"vagg_bayes.refute.placebo", "vagg_bayes.refute.resample"}


def _load_tests() -> list[str]:
    loaded = []
    for name in TEST_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name in _REQUIRED or exc.name != name:
                raise  # a missing dependency of an existing module is an error
            continue
        loaded.append(name)
    return loaded


LOADED_MODULES = _load_tests()

from vagg_bayes.refute.suite import (  # noqa: E402
    RefutationResult,
    available_tests,
    check_request,
    parse_tests,
    refute,
)

__all__ = [
    "REGISTRY",
    "Context",
    "LOADED_MODULES",
    "Options",
    "Outcome",
    "RefutationError",
    "RefutationResult",
    "Row",
    "available_tests",
    "check_request",
    "parse_tests",
    "refute",
    "register",
    "rows_frame",
]
