"""Store figures: the expected panels, and overlays whose maximum sits on the known particle."""

from __future__ import annotations

import numpy as np
import pytest
from store_builder import build_store, gaussian_blobs, write_tomogram

from tomocam.errors import ClassError
from tomocam.render.tomogram import read_plane, render_montage, render_store
from tomocam.store import open_store
from tomocam.store.space import VoxelSpace, choose_level

SHAPE = (32, 40, 48)
VOXEL = 10.0
RIBO = (10, 26, 16)  # z, y, x
PROT = (22, 12, 34)


@pytest.fixture
def store(tmp_path):
    ribo = gaussian_blobs(SHAPE, [RIBO], [3.0], sigma=2.5)
    prot = gaussian_blobs(SHAPE, [PROT], [2.0], sigma=2.5) - 0.5 * ribo
    noise = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    tomo = write_tomogram(tmp_path / "tomo.mrc", ribo + prot + 0.3 * noise, VOXEL)
    heat = {"respond": np.stack([ribo, prot]), "gradcam": np.stack([0.5 * ribo, -prot])}
    return open_store(build_store(tmp_path / "run.zarr", heat, ["ribo", "prot"], VOXEL, tomo, n_levels=3))


def heat_image(ax):
    """The heatmap layer of a panel (drawn over the tomogram)."""
    return ax.images[-1]


def argmax_position(image) -> tuple[float, float]:
    """(row, col) position in angstrom of the largest value of an ``origin="lower"`` image."""
    data = np.asarray(image.get_array())
    r, c = np.unravel_index(np.argmax(data), data.shape)
    left, right, bottom, top = image.get_extent()
    return bottom + (r + 0.5) * (top - bottom) / data.shape[0], left + (c + 0.5) * (right - left) / data.shape[1]


def test_overview_has_three_planes_per_method_and_class_with_colour_bars(store):
    fig = render_store(store, at=RIBO)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 12 and len(fig.axes) == 12 + 4  # one colour bar per (class, method)
    assert [ax.get_title() for ax in panels[:6]] == [
        "ribo · Respond-CAM · xy, z=10", "ribo · Respond-CAM · xz, y=26", "ribo · Respond-CAM · yz, x=16",
        "ribo · Grad-CAM · xy, z=10", "ribo · Grad-CAM · xz, y=26", "ribo · Grad-CAM · yz, x=16",
    ]
    assert all(len(ax.images) == 2 for ax in panels)  # tomogram + heatmap
    bars = [ax for ax in fig.axes if not ax.images]
    assert all(bar.get_ylabel() == "score units" for bar in bars)


def test_overlay_maximum_is_at_the_particle_in_every_plane(store):
    fig = render_store(store, classes=["ribo"], methods=["respond"], at=RIBO)
    z, y, x = (v * VOXEL for v in RIBO)
    expected = {"xy": (y, x), "xz": (z, x), "yz": (z, y)}
    for ax, plane in zip(fig.axes[:3], ("xy", "xz", "yz")):
        image = heat_image(ax)
        assert np.asarray(image.get_array()).max() == pytest.approx(3.0, rel=1e-4)
        assert argmax_position(image) == pytest.approx(expected[plane])
        # signed colour scale centred at zero, symmetric
        assert image.norm.vcenter == 0 and image.norm.vmin == -image.norm.vmax


def test_negative_evidence_keeps_its_sign(store):
    fig = render_store(store, classes=["prot"], methods=["respond"], at=RIBO)
    data = np.asarray(heat_image(fig.axes[0]).get_array())
    assert data.min() == pytest.approx(-1.5, rel=1e-3)  # -0.5 x ribo's peak: no ReLU, no rescaling


def test_small_figures_read_a_coarse_level_at_the_same_place(store):
    fig = render_store(store, classes=["ribo"], methods=["respond"], at=RIBO, pixels=12)
    image = heat_image(fig.axes[0])
    assert np.asarray(image.get_array()).shape == (10, 12)  # level 2 xy plane of a 40 x 48 grid
    assert "respond: 2" in fig._suptitle.get_text()
    row, col = argmax_position(image)
    assert abs(row - RIBO[1] * VOXEL) <= 2 * VOXEL and abs(col - RIBO[2] * VOXEL) <= 2 * VOXEL


def test_montage_scales_each_class_to_its_own_largest_value_and_says_so(store):
    fig = render_montage(store, method="gradcam", at=PROT)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 3  # two panels and one colour bar
    for ax, name in zip(panels, ["ribo", "prot"]):
        data = np.asarray(heat_image(ax).get_array())
        limit = float(np.abs(data).max())
        assert (heat_image(ax).norm.vmin, heat_image(ax).norm.vmax) == pytest.approx((-limit, limit))
        assert ax.get_title() == f"{name}  (L = {limit:.2g})"
    # the prot panel's Grad-CAM is negative at the prot particle, and stays so (no rescaling of values)
    assert np.asarray(heat_image(panels[1]).get_array()).min() == pytest.approx(-2.0, rel=1e-2)
    assert "colour scale per class" in fig._suptitle.get_text()
    bar = next(ax for ax in fig.axes if not ax.images)
    assert bar.get_ylabel().startswith("score / L of the panel")


def test_missing_tomogram_draws_heatmaps_alone_with_a_warning(store, tmp_path):
    (tmp_path / "tomo.mrc").unlink()
    with pytest.warns(UserWarning, match="without the tomogram"):
        fig = render_store(store, classes=["ribo"], methods=["respond"])
    assert all(len(ax.images) == 1 for ax in fig.axes if ax.images)


def test_unknown_class_is_a_class_error(store):
    with pytest.raises(ClassError, match="'nope'"):
        render_store(store, classes=["nope"])


def test_read_plane_reads_only_that_plane():
    class Recording:
        shape = (6, 7, 8)

        def __init__(self):
            self.keys = []

        def __getitem__(self, key):
            self.keys.append(key)
            return np.zeros((6, 7, 8))[key]

    vol = Recording()
    plane = read_plane(vol, VoxelSpace((2.0, 2.0, 2.0)), "xz", np.array([0.0, 6.2, 0.0]))
    assert vol.keys == [(slice(None, None, 1), 3, slice(None, None, 1))]
    assert plane.values.shape == (6, 8)
    assert plane.extent == (-1.0, 15.0, -1.0, 11.0)


def test_choose_level_is_the_coarsest_with_enough_pixels():
    shapes = [(64, 256, 256), (32, 128, 128), (16, 64, 64)]
    assert choose_level(shapes, 100) == 1
    assert choose_level(shapes, 64) == 2
    assert choose_level(shapes, 1000) == 0


def test_cli_writes_overview_and_one_montage_per_method(store, tmp_path):
    from typer.testing import CliRunner

    from tomocam.cli.main import app

    out = tmp_path / "figs"
    result = CliRunner().invoke(app, ["render", store.path, "-o", str(out), "-c", "ribo", "--at", "10,26,16",
                                      "--dpi", "40"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["run_montage_gradcam.png", "run_montage_respond.png",
                                                    "run_overview.png"]
    bad = CliRunner().invoke(app, ["render", store.path, "--at", "1,2"])
    assert bad.exit_code != 0 and "z,y,x" in bad.output
