"""Exact tests of peak picking and pick matching on synthetic heatmaps with known peaks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from store_builder import gaussian_blobs

from tomocam.picking.peaks import ball, find_peaks, local_maxima, suppress
from tomocam.picking.scoring import PickScore, match_points, score_picks

CENTRES = [(10, 12, 9), (30, 8, 40), (22, 35, 25), (5, 44, 44), (40, 40, 5)]
AMPS = [3.0, 2.0, 5.0, 1.5, 0.4]


def test_ball_is_the_euclidean_ball():
    b = ball(1.0, 3)
    assert b.shape == (3, 3, 3) and b.sum() == 7  # centre and its 6 face neighbours
    assert ball(2.5, 2).sum() == 21


def test_gaussian_blobs_are_found_exactly_above_threshold():
    vol = gaussian_blobs((48, 48, 48), CENTRES, AMPS)
    coords, scores = find_peaks(vol, threshold=1.0, radius=5, block=(16, 16, 16))
    # The 0.4 blob is below the threshold; the rest come back highest first at their exact voxel.
    expected = sorted(zip(AMPS, CENTRES), reverse=True)[:4]
    assert [tuple(c) for c in coords] == [c for _, c in expected]
    np.testing.assert_allclose(scores, [a for a, _ in expected], rtol=1e-3)


def test_negative_heatmap_values_never_pick():
    vol = -gaussian_blobs((20, 20, 20), [(10, 10, 10)], [4.0])
    coords, _ = find_peaks(vol, threshold=0.0, radius=3)
    assert len(coords) == 0


def test_nearby_weaker_peak_is_suppressed_but_a_distant_one_is_kept():
    vol = np.zeros((30, 30, 30), np.float32)
    vol[10, 10, 10] = 5.0
    vol[10, 10, 14] = 4.0  # 4 voxels away: inside radius 6, a separate local max for radius 3
    vol[10, 10, 25] = 3.0  # 15 voxels away
    coords, scores = find_peaks(vol, threshold=0.5, radius=6)
    assert [tuple(c) for c in coords] == [(10, 10, 10), (10, 10, 25)]
    coords, _ = find_peaks(vol, threshold=0.5, radius=3)
    assert len(coords) == 3


def test_plateau_gives_one_pick():
    vol = np.zeros((20, 20), np.float32)
    vol[5:8, 5:8] = 2.0
    coords, scores = find_peaks(vol, threshold=1.0, radius=4)
    assert len(coords) == 1 and scores[0] == 2.0
    assert (5 <= coords[0]).all() and (coords[0] < 8).all()


def test_edge_voxels_can_be_peaks():
    vol = np.zeros((10, 10, 10), np.float32)
    vol[0, 0, 0] = 1.0
    vol[9, 9, 9] = 2.0
    coords, _ = find_peaks(vol, threshold=0.5, radius=2, block=(4, 4, 4))
    assert [tuple(c) for c in coords] == [(9, 9, 9), (0, 0, 0)]


def test_radius_must_be_positive():
    with pytest.raises(ValueError, match="radius"):
        find_peaks(np.zeros((4, 4)), 0.0, 0)


@settings(max_examples=40, deadline=None)
@given(
    vol=arrays(np.float32, st.tuples(*[st.integers(3, 14)] * 3), elements=st.integers(-3, 6).map(float)),
    block=st.tuples(*[st.integers(1, 9)] * 3),
    radius=st.sampled_from([1.0, 1.5, 2.0, 3.2]),
)
def test_blockwise_picks_equal_whole_volume_picks(vol, block, radius):
    """Invariant: reading with halos gives exactly the picks of the whole array, for any block size."""
    whole = find_peaks(vol, 0.5, radius, block=vol.shape)
    tiled = find_peaks(vol, 0.5, radius, block=block)
    np.testing.assert_array_equal(whole[0], tiled[0])
    np.testing.assert_array_equal(whole[1], tiled[1])


@settings(max_examples=40, deadline=None)
@given(
    vol=arrays(np.float32, st.tuples(st.integers(3, 12), st.integers(3, 12)), elements=st.integers(0, 5).map(float)),
    radius=st.sampled_from([1.0, 2.0, 2.9]),
)
def test_picks_obey_the_suppression_contract(vol, radius):
    """Kept picks are > radius apart, and every local maximum above threshold that was dropped lies within
    radius of a kept pick at least as high."""
    coords, scores = find_peaks(vol, 0.5, radius, block=(5, 5))
    if len(coords) > 1:
        d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
        assert d[np.triu_indices(len(coords), 1)].min() > radius
    cand, cand_scores = local_maxima(vol, 0.5, radius)
    for c, s in zip(cand, cand_scores):
        d = np.linalg.norm(coords - c, axis=1)
        assert ((d <= radius) & (scores >= s)).any()


def test_suppress_of_nothing_is_empty():
    assert suppress(np.zeros((0, 3)), np.zeros(0), 2.0).shape == (0,)


def brute_force_matching(pred, truth, tol):
    """Largest one-to-one matching within tol, then the smallest total distance: by enumeration."""
    best = (0, 0.0)
    n, m = len(pred), len(truth)
    for k in range(min(n, m), 0, -1):
        costs = []
        for ps in itertools.combinations(range(n), k):
            for ts in itertools.permutations(range(m), k):
                d = [np.linalg.norm(pred[p] - truth[t]) for p, t in zip(ps, ts)]
                if max(d) <= tol:
                    costs.append(sum(d))
        if costs:
            return k, min(costs)
    return best


@settings(max_examples=60, deadline=None)
@given(
    pred=arrays(np.float64, st.tuples(st.integers(0, 4), st.just(2)), elements=st.integers(0, 6).map(float)),
    truth=arrays(np.float64, st.tuples(st.integers(0, 4), st.just(2)), elements=st.integers(0, 6).map(float)),
    tol=st.sampled_from([0.0, 1.0, 1.5, 3.0]),
)
def test_matching_is_maximal_and_cheapest(pred, truth, tol):
    pairs = match_points(pred, truth, tol)
    k, cost = brute_force_matching(pred, truth, tol)
    assert len(pairs) == k
    assert len(set(pairs[:, 0])) == k and len(set(pairs[:, 1])) == k
    d = np.linalg.norm(pred[pairs[:, 0]] - truth[pairs[:, 1]], axis=1) if k else np.zeros(0)
    assert (d <= tol).all()
    assert d.sum() == pytest.approx(cost)


def test_score_picks_counts_per_class_and_overall():
    truth = np.array([[0, 0, 0], [10, 10, 10], [20, 20, 20], [30, 30, 30]], float)
    truth_class = ["a", "a", "b", "b"]
    pred = np.array([[1, 0, 0], [1, 1, 0], [10, 10, 13], [20, 21, 20], [50, 50, 50]], float)
    pred_class = ["a", "a", "a", "a", "b"]
    per_class, overall = score_picks(pred, pred_class, truth, truth_class, tolerance=2.0)
    # a: two picks near particle 0 (one matches, one is a duplicate), one 3 voxels off particle 1 (a miss),
    #    one at a class-b particle (wrong class: false positive). b: the one pick is far from everything.
    assert per_class["a"] == PickScore(1, 3, 1)
    assert per_class["b"] == PickScore(0, 1, 2)
    assert overall == PickScore(1, 4, 3)
    assert overall.precision == pytest.approx(1 / 5)
    assert overall.recall == pytest.approx(1 / 4)
    assert overall.f1 == pytest.approx(2 * 0.2 * 0.25 / 0.45)
    assert PickScore(0, 0, 0).f1 == 0.0


@settings(max_examples=40, deadline=None)
@given(
    vol=arrays(np.float32, st.tuples(*[st.integers(2, 12)] * 3), elements=st.integers(-2, 4).map(float)),
    radius=st.sampled_from([1.0, 1.8, 2.5, 4.0]),
)
def test_local_maxima_equal_the_ball_maximum_filter_definition(vol, radius):
    """The fast candidate search (inscribed cube, then exact ball test) equals the plain definition."""
    from scipy import ndimage

    ref = ndimage.maximum_filter(vol, footprint=ball(radius, 3), mode="constant", cval=-np.inf)
    expected = np.argwhere((vol == ref) & (vol > 0.5))
    coords, scores = local_maxima(vol, 0.5, radius)
    np.testing.assert_array_equal(coords, expected)
    np.testing.assert_array_equal(scores, vol[tuple(expected.T)])
