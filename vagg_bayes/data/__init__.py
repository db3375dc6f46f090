"""Panel data: simulation of a synthetic panel with known truth."""

from vagg_bayes.data.simulate import simulate_panel

__all__ = ["simulate_panel"]
