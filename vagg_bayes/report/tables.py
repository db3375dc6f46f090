"""Summary rows of posterior draws (re-exported from :mod:`vagg_bayes.bayes.summary`).

May import: vagg_bayes.bayes.summary.
"""

from __future__ import annotations

from vagg_bayes.bayes.summary import COLUMNS, HDI_PROB, summarize_draws

__all__ = ["COLUMNS", "HDI_PROB", "summarize_draws"]
