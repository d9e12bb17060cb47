"""The default pick threshold: median + 3 robust standard deviations of a class's heatmap peaks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from store_builder import build_store, gaussian_blobs, write_tomogram

from tomocam.picking import find_peaks, pick_store, robust_threshold
from tomocam.store import open_store

SHAPE = (32, 40, 48)
VOXEL = 8.0
CENTRES = {"a": [(8, 10, 12), (24, 30, 36), (8, 30, 40)], "b": [(20, 12, 20), (22, 32, 10)]}


def test_robust_threshold_is_median_plus_three_normal_scaled_mads():
    # median 3, |x - 3| = 2, 1, 0, 1, 97 -> MAD 1; one outlier moves neither statistic
    assert robust_threshold([1, 2, 3, 4, 100]) == pytest.approx(3 + 3 * 1.482602218505602)
    assert robust_threshold([1, 2, 3, 4, 100], sigmas=1) == pytest.approx(3 + 1.482602218505602)
    assert robust_threshold([]) == math.inf
    assert robust_threshold([2.0, 2.0]) == 2.0  # no spread: only values above the common one pass


def test_default_threshold_keeps_the_particles_and_few_noise_peaks(tmp_path):
    """Blobs over smooth noise (heatmaps are smooth): every particle is picked, and of the many noise peaks only
    the few in the upper tail pass (maxima of noise are skewed to the right, so a three-sigma rule on them lets
    through a few per cent, not the 0.1 % of a normal distribution)."""
    rng = np.random.default_rng(0)

    def smooth_noise() -> np.ndarray:
        noise = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 2.0)
        return (0.1 * noise / noise.std()).astype(np.float32)

    maps = np.stack([gaussian_blobs(SHAPE, CENTRES[c], [2.0, 3.0, 2.5][: len(CENTRES[c])]) + smooth_noise()
                     for c in ("a", "b")])
    tomo = write_tomogram(tmp_path / "t.mrc", maps.sum(0), VOXEL)
    store = open_store(build_store(tmp_path / "r.zarr", {"respond": maps}, ["a", "b"], VOXEL, tomo))
    radius = 4 * VOXEL

    auto = pick_store(store, radius=radius, exclusive=False)
    for c, name in enumerate(["a", "b"]):
        got = set(map(tuple, np.rint(auto.loc[auto["class"] == name, ["z", "y", "x"]].to_numpy() / VOXEL).astype(int)))
        assert set(CENTRES[name]) <= got
        _, peaks = find_peaks(maps[c], -np.inf, radius / VOXEL)
        noise_peaks = len(peaks) - len(CENTRES[name])
        assert noise_peaks > 50
        assert len(got) - len(CENTRES[name]) < 0.1 * noise_peaks
        assert auto.attrs["thresholds"][name] == pytest.approx(robust_threshold(peaks))
    fixed = pick_store(store, threshold=0.0, radius=radius, exclusive=False)
    assert len(fixed) > 4 * len(auto)  # the old default picked the noise too
    assert fixed.attrs["thresholds"] == {"a": 0.0, "b": 0.0}
