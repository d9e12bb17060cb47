"""The store opens with the standard OME-Zarr reader (ome-zarr-py, what napari's plugin uses): axes, scales,
channel names, pyramid data and the label image are read back as tomocam wrote them."""

from __future__ import annotations

import numpy as np
import pytest
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from store_builder import build_store, gaussian_blobs, write_tomogram

from tomocam.store import open_store

SHAPE = (16, 20, 24)
VOXEL = 12.5
CLASSES = ["ribosome", "proteasome"]


@pytest.fixture
def store(tmp_path):
    a = gaussian_blobs(SHAPE, [(8, 10, 12)], [3.0])
    tomo = write_tomogram(tmp_path / "tomo.mrc", a, VOXEL)
    heat = {"respond": np.stack([a, -a]), "gradcam": np.stack([0.5 * a, a])}
    return open_store(build_store(tmp_path / "run.zarr", heat, CLASSES, VOXEL, tomo, n_levels=2))


def read_node(path: str, spec=Multiscales):
    """The node of ``path`` with ``spec`` (a label's reader also yields its source image, hidden)."""
    location = parse_url(path)
    assert location is not None, f"ome-zarr cannot open {path}"
    nodes = [n for n in Reader(location)() if any(isinstance(s, spec) for s in n.specs)]
    assert nodes, f"ome-zarr finds no {spec.__name__} at {path}"
    return nodes[0]


@pytest.mark.parametrize("method", ["respond", "gradcam"])
def test_heatmaps_read_back_with_axes_scales_and_channel_names(store, method):
    group = "respond" if method == "respond" else "gradcam"
    node = read_node(f"{store.path}/{group}")
    assert any(isinstance(s, Multiscales) for s in node.specs)
    meta = node.metadata
    assert [(a["name"], a["type"]) for a in meta["axes"]] == [("c", "channel"), ("z", "space"), ("y", "space"),
                                                             ("x", "space")]
    assert all(a.get("unit") == "angstrom" for a in meta["axes"][1:])
    assert meta["channel_names"] == CLASSES
    for level, transforms in enumerate(meta["coordinateTransformations"]):
        scale = next(t["scale"] for t in transforms if t["type"] == "scale")
        assert scale == [1.0] + [VOXEL * 2**level] * 3
        shift = next((t["translation"] for t in transforms if t["type"] == "translation"), [0.0] * 4)
        assert shift == pytest.approx([0.0] + [(2**level - 1) / 2 * VOXEL] * 3)
    assert [tuple(d.shape) for d in node.data] == [(2, *SHAPE), (2, *(s // 2 for s in SHAPE))]
    np.testing.assert_array_equal(np.asarray(node.data[0]), store.heatmap(method, 0)[:])
    np.testing.assert_array_equal(np.asarray(node.data[1]), store.heatmap(method, 1)[:])


def test_label_image_reads_back_as_labels_of_the_heatmap(store):
    node = read_node(f"{store.path}/labels/segmentation", Label)
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]
    props = node.metadata["properties"]
    assert {v["class"] for v in props.values()} == set(CLASSES)
    labels = np.asarray(node.data[0])
    assert labels.dtype == np.uint16 and labels.shape == SHAPE
    assert labels[8, 10, 12] == 1 and labels[0, 0, 0] == 0
    # the reader also resolves the label's source image: the Respond-CAM heatmaps
    source = [n for n in Reader(parse_url(f"{store.path}/labels/segmentation"))() if not n.visible]
    assert source and source[0].metadata["channel_names"] == CLASSES
