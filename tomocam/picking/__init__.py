"""Particle picking from heatmaps: peaks, a threshold chosen from the data, picks of a whole store, and scores
against a known particle list.

- :mod:`tomocam.picking.peaks`: local maxima and non-maximum suppression on arrays, block by block (pure maths).
- :mod:`tomocam.picking.threshold`: the default threshold, from the distribution of a heatmap's peaks.
- :mod:`tomocam.picking.scoring`: one-to-one matching with known particles; precision, recall, F1.
- :mod:`tomocam.picking.store`: all of that on an explain store, class by class, into one table.
"""

from tomocam.picking.peaks import find_peaks
from tomocam.picking.scoring import PickScore, match_points, score_picks
from tomocam.picking.store import evaluate_picks, pick_store, store_tomogram
from tomocam.picking.threshold import robust_threshold

__all__ = ["PickScore", "evaluate_picks", "find_peaks", "match_points", "pick_store", "robust_threshold",
           "score_picks", "store_tomogram"]
