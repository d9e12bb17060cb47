"""The zarr writers of the copick export, over several chunks: values, chunking and OME-NGFF 0.4 metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from copick_builder import make_store
from ome_zarr_models.v04 import Image

from tomocam.store import open_store
from tomocam.write import copick_zarr
from tomocam.write.copick_zarr import write_features, write_segmentation


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(copick_zarr, "CHUNK", 8)  # several chunks per axis of the (20, 24, 28) volume
    return open_store(make_store(tmp_path))


def test_segmentation_maps_every_chunk_through_the_table(store, tmp_path):
    lut = np.array([0, 0, 300, 12])  # a label above 255 needs uint16
    path = write_segmentation(store, lut, tmp_path / "seg.zarr", 10.0, {"x": 1})
    group = zarr.open_group(str(path), mode="r")
    Image.from_zarr(group)
    array = group["0"]
    assert array.chunks == (8, 8, 8) and array.dtype == np.uint16 and group.attrs["tomocam"] == {"x": 1}
    np.testing.assert_array_equal(array[:], lut[store.labels(0)[:]])
    meta = json.loads((path / "0/.zarray").read_text())
    assert meta["dimension_separator"] == "/" and meta["compressor"]["cname"] == "lz4"


@pytest.mark.parametrize("float16", [False, True])
def test_features_are_the_full_grid_chunk_by_chunk(store, tmp_path, float16):
    path = write_features(store, "gradcam", ["proteasome_26S", "background"], tmp_path / "f.zarr", 10.0,
                          float16=float16, provenance={})
    group = zarr.open_group(str(path), mode="r")
    Image.from_zarr(group)
    array = group["0"]
    assert array.chunks == (1, 8, 8, 8) and array.dtype == (np.float16 if float16 else np.float32)
    expected = store.full_grid("gradcam").compute()[[2, 0]]
    np.testing.assert_array_equal(array[:], expected.astype(array.dtype))
    assert group.attrs["tomocam"]["channels"] == ["proteasome_26S", "background"]
