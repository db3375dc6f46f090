"""Model comparison: leave-one-out on one unit for every spec, stacking, averaged effects.

``compare(results, loo="group")`` ranks fitted models by PSIS-LOO (exact refits where
Pareto k is high) with stacking weights; ``compare_specs(specs, data)`` fits the specs
first; :class:`Comparison` holds the table, writes ``comparison.csv`` and
``averaged_effects.csv``.

May import: vagg_bayes.compare.loo, vagg_bayes.compare.stacking.
"""

from vagg_bayes.compare.stacking import Comparison, compare, compare_specs

__all__ = ["Comparison", "compare", "compare_specs"]
