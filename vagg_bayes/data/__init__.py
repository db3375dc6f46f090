"""Panel data: reading and validating a user's panel; a synthetic panel with known truth."""

from vagg_bayes.data.panel import load_panel, read_table, validate_panel
from vagg_bayes.data.simulate import simulate_panel, truth_to_json

__all__ = ["load_panel", "read_table", "simulate_panel", "truth_to_json", "validate_panel"]
