"""What every refutation test returns, and what it is given.

A refutation test is a function ``test(context) -> Outcome`` registered under its name
(``placebo_permute_groups``, ``graph_independence``, ...). It returns one
:class:`Row` per effect it judges (the total effect and, with mediators, the direct and
every indirect effect) and optionally figures. ``refutations.csv`` is the rows in
order, with DESIGN.md section 4.3's columns first.

Verdicts are three-valued: ``"pass"``, ``"fail"`` or ``"inconclusive"`` (the data
cannot decide: too few cities for a permutation test, refits that failed their
diagnostics, ...). ``passed`` is ``True``/``False`` for pass/fail and empty for
inconclusive; ``detail`` always states the pass rule and what was seen.

May import: numpy, pandas, the standard library; ``Analysis`` and ``EstimateResult``
only for type hints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.report.result import EstimateResult

#: DESIGN.md section 4.3: these columns first, in this order.
CONTRACT_COLUMNS = ("refuter", "estimate", "refuted_estimate", "hdi_low", "hdi_high",
                    "passed", "detail")
#: Extra columns after the contract's.
EXTRA_COLUMNS = ("effect", "verdict", "p_value", "mc_se", "n_refits", "n_failed",
                 "seconds")
VERDICTS = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class Row:
    """One line of ``refutations.csv``: one test judged on one effect.

    ``estimate`` is the posterior mean of the effect on the real data;
    ``refuted_estimate`` the test's counterpart (mean of the placebo estimates, the
    estimate without a city, under a wider prior, ...); ``hdi_low``/``hdi_high`` the
    94 % interval that the pass rule reads (say which in ``detail``).
    """

    refuter: str
    effect: str
    estimate: float
    refuted_estimate: float
    hdi_low: float
    hdi_high: float
    verdict: str
    detail: str
    p_value: float = math.nan
    mc_se: float = math.nan
    n_refits: int = 0
    n_failed: int = 0
    seconds: float = math.nan

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")
        if not self.detail:
            raise ValueError("detail must state the pass rule")

    @property
    def passed(self) -> bool | None:
        return {"pass": True, "fail": False}.get(self.verdict)


@dataclass
class Outcome:
    """What one test returns: its rows, and figures (file name -> writer(path))."""

    rows: list[Row]
    figures: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    """The user's choices for a refutation run (recorded in the manifest)."""

    placebos: int = 100
    strata: str | None = None
    drop_groups: tuple[str, ...] = ()
    subset_fraction: float = 0.8
    subsets: int = 20
    bootstraps: int = 50
    lead: int = 1
    seed: int = 0
    workers: int = 1
    scheduler: str | None = None


@dataclass
class Context:
    """What a test is given: the fitted analysis, its result, the validated data."""

    analysis: Analysis
    result: EstimateResult
    data: pd.DataFrame
    options: Options
    #: runs many refits (parallel workers, Dask, resume cache); set by the runner
    refits: Any = None

    @property
    def spec(self):
        return self.analysis.spec

    def effect_names(self) -> list[str]:
        """The effects every test judges: ``total`` and, with mediators, ``direct``
        and each ``indirect:<mediator>`` (plus ``indirect`` when there are several)."""
        return list(self.result.effect_draws)


def rows_frame(rows: list[Row]) -> pd.DataFrame:
    """Rows -> the ``refutations.csv`` table, contract columns first."""
    records = []
    for row in rows:
        record = asdict(row)
        record["passed"] = row.passed
        records.append(record)
    columns = [*CONTRACT_COLUMNS, *EXTRA_COLUMNS]
    return pd.DataFrame.from_records(records, columns=columns)


def hdi(values: np.ndarray, prob: float = 0.94) -> tuple[float, float]:
    """Highest-density interval of a 1-D sample (ArviZ's)."""
    import arviz as az

    values = np.asarray(values, dtype=float).ravel()
    low, high = az.hdi(values, hdi_prob=prob)
    return float(low), float(high)


Test = Callable[[Context], Outcome]
REGISTRY: dict[str, Test] = {}


def register(name: str) -> Callable[[Test], Test]:
    """Decorator: register a test under ``name`` (the ``--tests`` spelling)."""

    def wrap(fn: Test) -> Test:
        if name in REGISTRY:
            raise ValueError(f"refutation test {name!r} registered twice")
        REGISTRY[name] = fn
        return fn

    return wrap


def effect_draws(result: EstimateResult) -> Mapping[str, np.ndarray]:
    return result.effect_draws
