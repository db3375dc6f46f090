"""Exceptions raised by vagg_bayes.

Exception tree::

    VaggBayesError                      base of everything raised on purpose
    ├── SpecError(ValueError)           the TOML spec is malformed or inconsistent
    ├── DataError(ValueError)           the data file or a column is unusable
    ├── GraphError(ValueError)          the DAG is malformed or contradicts the spec
    └── MissingExtraError(ImportError)  an optional dependency is not installed

    DataWarning(UserWarning)            the data can be fitted, but part of it is weak or
                                        degenerate (say, groups of a single row)

Every message says what is wrong, what was received and how to fix it. The command
line turns any ``VaggBayesError`` into a one-paragraph message and exit status 2.
"""

from __future__ import annotations


class VaggBayesError(Exception):
    """Base class of every error vagg_bayes raises on purpose."""


class SpecError(VaggBayesError, ValueError):
    """The spec file is malformed, has unknown keys or inconsistent settings."""


class DataError(VaggBayesError, ValueError):
    """The data file is missing, empty, or a column cannot serve its role."""


class GraphError(VaggBayesError, ValueError):
    """The causal graph is malformed or contradicts the spec."""


class MissingExtraError(VaggBayesError, ImportError):
    """An optional dependency is needed but not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the optional package '{package}', which is not installed. "
            f"Install it with: pip install 'vagg-bayes[{extra}]'"
        )


class DataWarning(UserWarning):
    """The data can be fitted, but something about them weakens or distorts an estimate.

    Raised before sampling, e.g. for groups with a single row beside a group-varying
    slope, or a control nearly collinear with the treatment; the message says what is
    weak and what to do. The command line prints it as ``vagg-bayes: warning (data)``.
    """
