"""Research designs beyond selection on observables, built as regressors of the usual models.

- :mod:`vagg_bayes.designs.shock`: the shock (event-study) design of ``[design] shock_year``.
"""
