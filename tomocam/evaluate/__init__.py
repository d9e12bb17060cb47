"""Evaluation of a model and its heatmaps.

- :mod:`tomocam.evaluate.table1`: the paper's Table 1 (accuracy, sum-to-score L1 and Kendall's tau) on subtomograms.
- :mod:`tomocam.evaluate.localisation`: how well heatmaps over a whole tomogram find its particles.
- :mod:`tomocam.evaluate.splits`: the train/validation/test split and reading boxes as model inputs.
"""
