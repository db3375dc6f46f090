"""Panel data: reading and validating panels; a synthetic panel and its raw records."""

from vagg_bayes.data.panel import load_panel, read_table, validate_panel
from vagg_bayes.data.raw import RawRecords, simulate_raw
from vagg_bayes.data.simulate import simulate_panel, truth_to_json

__all__ = ["RawRecords", "load_panel", "read_table", "simulate_panel", "simulate_raw",
           "truth_to_json", "validate_panel"]
