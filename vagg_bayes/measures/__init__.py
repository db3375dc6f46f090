"""Measures built from raw records: export resilience and the virtual-agglomeration index.

::

    firm_resilience          firms around shocks: resistance, recovery against the industry
                             without the firm, survival, years to recover (censored)
    annual_resilience        the firm-year resilience index (ER_it), every record
    city_resilience          regions: Martin's sensitivity index, mix-adjusted resistance
    counterfactual_resilience  depth, loss, recovery time against the pre-shock trend, with
                             posterior draws (conjugate, closed form)
    entropy_index            composite index of indicators by entropy weights
    location_quotient        location quotients of a sector's employment
    build_indices            raw records -> a panel's resilience and va columns

May import: numpy, pandas, vagg_bayes.errors, vagg_bayes.data.raw.
"""

from vagg_bayes.measures.build import BuiltIndices, build_indices
from vagg_bayes.measures.counterfactual import (
    TrendPrior,
    counterfactual_resilience,
    gap_measures,
)
from vagg_bayes.measures.index import entropy_index, location_quotient
from vagg_bayes.measures.resilience import annual_resilience, city_resilience, firm_resilience

__all__ = [
    "BuiltIndices",
    "TrendPrior",
    "annual_resilience",
    "build_indices",
    "city_resilience",
    "counterfactual_resilience",
    "entropy_index",
    "firm_resilience",
    "gap_measures",
    "location_quotient",
]
