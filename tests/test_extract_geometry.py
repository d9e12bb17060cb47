"""Where boxes are cut: explain's tile geometry, faces, shifts, and background away from every particle."""

from __future__ import annotations

import numpy as np
import pytest

from tomocam.errors import InputError
from tomocam.extract.geometry import background_centres, box_centres, box_spec, box_starts, inside, shifted


@pytest.mark.parametrize("tile", [(16, 16, 16), (15, 16, 17)])
def test_a_tile_centre_gives_back_its_start(tile):
    starts = np.random.default_rng(0).integers(0, 50, size=(40, 3))
    np.testing.assert_array_equal(box_starts(box_centres(starts, tile), tile), starts)


def test_box_spec_sizes_tiles_as_explain_and_refuses_what_explain_would_resize_elsewhere():
    spec = box_spec(16, 20.0, (10.0, 10.0, 10.0), invert=True)
    assert spec.tile == (32, 32, 32) and spec.size == (16, 16, 16) and spec.invert and spec.normalisation == "raw"
    assert box_spec(16, 20.0, (13.0, 13.0, 13.0), invert=False).tile == (25, 25, 25)
    with pytest.raises(InputError, match="resample"):
        box_spec(40, 10.0, (30.0, 30.0, 30.0), invert=False)  # 13 voxels -> 39, not 40


def test_inside_keeps_whole_tiles_only():
    starts = np.array([[0, 0, 0], [-1, 0, 0], [4, 4, 4], [5, 4, 4]])
    np.testing.assert_array_equal(inside(starts, (6, 6, 6), (10, 10, 10)), [True, False, True, False])


def test_shifts_stay_within_the_bound_per_axis_and_are_seeded():
    centres = np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])
    moved, which = shifted(centres, 50, (1, 2, 3), np.random.default_rng(1))
    assert moved.shape == (100, 3) and np.array_equal(which, np.repeat([0, 1], 50))
    offsets = moved - centres[which]
    assert np.all(np.abs(offsets) <= [1, 2, 3]) and np.all(offsets == np.round(offsets))
    assert set(np.unique(offsets[:, 2])) == {-3, -2, -1, 0, 1, 2, 3}  # the whole range is drawn
    again, _ = shifted(centres, 50, (1, 2, 3), np.random.default_rng(1))
    np.testing.assert_array_equal(moved, again)


def test_background_boxes_are_farther_than_the_radius_from_every_particle_and_inside():
    rng = np.random.default_rng(2)
    shape, tile = (40, 80, 80), (12, 12, 12)
    particles = rng.uniform(0, [40, 80, 80], size=(30, 3))
    radius = np.array([4.0, 6.0, 6.0])  # anisotropic voxels: an ellipsoid in voxel units
    centres = background_centres(shape, tile, particles, radius, 200, rng)
    assert centres.shape == (200, 3)
    d = (centres[:, None, :] - particles[None]) / radius
    assert np.sqrt((d ** 2).sum(-1)).min() > 1
    assert inside(box_starts(centres, tile), tile, shape).all()


def test_background_names_a_crowded_volume():
    particles = np.stack(np.meshgrid(*[np.arange(0, 20, 2.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    with pytest.raises(InputError, match="background boxes"):
        background_centres((20, 20, 20), (6, 6, 6), particles, (3, 3, 3), 10, np.random.default_rng(0))
