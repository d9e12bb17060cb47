"""The store's reader against the definition: the full-grid field of any store equals ``stitch_region`` over every
voxel with every tile (the stitch of the previous full-resolution store format, kept here as the oracle), level 0
is that field at the native samples, and the OME-Zarr transforms put every sample on its voxel."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import zarr
from explain_models import tiny_cnn_checkpoint, write_mrc

from tomocam.pipeline import ExplainConfig, explain_tomogram
from tomocam.stitch import stitch_region
from tomocam.store import layout, open_store
from tomocam.store.layout import HeatmapSampling, native_step
from tomocam.store.space import level_space
from tomocam.tile import TileGrid
from tomocam.write.export_mrc import FULL, export_store


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {n: tiny_cnn_checkpoint(d / f"cnn{n}.pt", input_size=n) for n in (12, 16)}


def _oracle(store, method: str) -> np.ndarray:
    """Every voxel stitched from every tile in one call: ``(k, z, y, x)``."""
    a = store.attrs
    grid = TileGrid.build(store.shape, tuple(a["tile"]), tuple(a["stride"]))
    maps = np.asarray(store.root[f"tiles/{method}"][...])
    return stitch_region((0,) * 3, store.shape, list(grid.starts), maps, grid.tile, a["window"])


# (shape, voxel size, model input, stride, window, chunk): 16^3 tiles (feature maps 4^3, step 4), 12^3 tiles (3^3,
# stride 6: step 2), and 32^3 tiles of a 5 A tomogram binned 2x to the model's 10 A (cells of 8 voxels, stride 12:
# step 4), every window; in the last case one phase-2 box (16 samples, 64 voxels) holds the whole depth of 52
# voxels, 6 tiles deep.
CASES = [
    ((24, 28, 36), 10.0, 16, None, "cosine", 4),
    ((26, 30, 23), 10.0, 12, 6, "gaussian", 4),
    ((40, 36, 48), 5.0, 16, 12, "flat", 4),
    ((52, 20, 24), 10.0, 16, None, "cosine", 16),
]


@pytest.mark.parametrize("shape,voxel,size,stride,window,chunk", CASES)
def test_full_grid_and_native_level_equal_the_full_resolution_stitch(client, tmp_path, models, shape, voxel, size,
                                                                    stride, window, chunk):
    volume = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    mrc = write_mrc(tmp_path / "t.mrc", volume, voxel_size=voxel)
    config = ExplainConfig(tomogram=str(mrc), output=str(tmp_path / "t.zarr"), model=str(models[size]),
                           stride=stride, window=window, methods=("respond", "gradcam"), block=2, chunk=chunk)
    store = open_store(explain_tomogram(config, client=client).store)
    a = store.attrs
    step = tuple(native_step(t, s, f) for t, s, f in zip(a["tile"], a["stride"], a["feature_shape"]))
    assert store.sampling == HeatmapSampling(shape, step) and max(step) > 1
    for method in ("respond", "gradcam"):
        oracle = _oracle(store, method)
        full = store.full_grid(method, chunk=7)  # blocks that cut across tiles and chunks
        assert full.shape == oracle.shape and full.dtype == np.float32
        np.testing.assert_allclose(full.compute(), oracle, rtol=1e-5, atol=1e-6 * np.abs(oracle).max())
        positions = [o + s * np.arange(n) for o, s, n in zip(store.sampling.offset, step, store.sampling.sample_shape)]
        native = oracle[np.ix_(range(oracle.shape[0]), *positions)]
        level0 = store.heatmap(method, 0)[...]
        np.testing.assert_allclose(level0, native, rtol=1e-5, atol=1e-6 * np.abs(oracle).max())
        # the OME transforms place sample i at voxel offset + i * step (angstrom: times the voxel size)
        grid = level_space(store, method, 0)
        last = np.array([[n - 1 for n in store.sampling.sample_shape]])
        np.testing.assert_allclose(grid.to_space(last)[0], [p[-1] * voxel for p in positions])
        if store.n_levels > 1:  # the last case's level 0 fits one chunk: no pyramid above it
            np.testing.assert_allclose(store.heatmap(method, 1)[...],
                                       _mean2(level0), rtol=1e-5, atol=1e-6 * np.abs(oracle).max())
    # labels on the tomogram's grid from the full-grid field, in uint8
    respond = _oracle(store, "respond")
    expected = np.where(respond.max(0) > a["labels"]["threshold"], respond.argmax(0) + 1, 0)
    labels = store.labels()[...]
    assert labels.dtype == np.uint8 and labels.shape == shape
    assert (labels != expected).mean() < 1e-4  # ties at the threshold only


def _mean2(x: np.ndarray) -> np.ndarray:
    """2x2x2 means of ``(k, z, y, x)``, odd last voxels dropped."""
    k, *s = x.shape
    h = [n // 2 for n in s]
    x = x[:, : 2 * h[0], : 2 * h[1], : 2 * h[2]]
    return x.reshape(k, h[0], 2, h[1], 2, h[2], 2).mean((2, 4, 6))


def test_full_grid_step_and_float16(client, tmp_path, models):
    """``heatmap_step=1`` stores the full grid itself; float16 keeps it within its stated precision."""
    volume = np.random.default_rng(6).standard_normal((20, 24, 28)).astype(np.float32)
    mrc = write_mrc(tmp_path / "t.mrc", volume)
    out = {}
    for name, kw in {"full": {"heatmap_step": 1}, "half": {"heatmap_step": 1, "heatmap_dtype": "float16"}}.items():
        config = ExplainConfig(tomogram=str(mrc), output=str(tmp_path / f"{name}.zarr"), model=str(models[16]),
                               **kw)
        out[name] = open_store(explain_tomogram(config, client=client).store)
    oracle = _oracle(out["full"], "respond")
    np.testing.assert_allclose(out["full"].heatmap()[...], oracle, rtol=1e-5, atol=1e-6 * np.abs(oracle).max())
    half = out["half"].heatmap()[...]
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), oracle, rtol=2**-11, atol=3e-8)
    np.testing.assert_allclose(out["half"].full_grid().compute(), oracle, rtol=1e-5, atol=1e-6 * np.abs(oracle).max())
    # export on the tomogram's grid: only what is asked, the level in the name, the exact field
    (path,) = export_store(out["half"], tmp_path / "mrc", methods=["respond"], classes=["c1"], level=FULL,
                           labels=False)
    assert path.name == "half_respond_c1_full.mrc"
    with mrcfile.open(path) as mrc:
        np.testing.assert_allclose(mrc.data, oracle[1], rtol=1e-5, atol=1e-6 * np.abs(oracle).max())


def test_tile_maps_are_chunked_in_cubes_of_tiles_and_stores_of_earlier_layouts_read_the_same(client, tmp_path, models,
                                                                                              monkeypatch):
    """``tiles/<method>``: chunks of whole tiles that tile each phase-1 block (here 2^3 tiles, the budget lowered to
    fit them). Stores written with the layouts before (one chunk per block; one shard per block) read the same."""
    monkeypatch.setattr(layout, "TILE_CHUNK_BYTES", 8 * 4 * 3 * 4**3)  # 8 tiles of 3 classes of 4^3 cells
    volume = np.random.default_rng(7).standard_normal((28, 32, 36)).astype(np.float32)
    mrc = write_mrc(tmp_path / "t.mrc", volume)
    config = ExplainConfig(tomogram=str(mrc), output=str(tmp_path / "t.zarr"), model=str(models[16]), block=4)
    store = open_store(explain_tomogram(config, client=client).store)
    maps = store.root["tiles/respond"]
    assert maps.shape[3:] == (3, 4, 4, 4)
    assert maps.shards is None and maps.chunks == (2, 2, 2, 3, 4, 4, 4)
    expected = store.full_grid().compute()
    np.testing.assert_allclose(expected, _oracle(store, "respond"), rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    values = maps[...]
    root = zarr.open_group(store.path, mode="r+")
    for chunks, shards in [((4, 4, 4, 3, 4, 4, 4), None), ((2, 2, 2, 3, 4, 4, 4), (4, 4, 4, 3, 4, 4, 4))]:
        old = root["tiles"].create_array("respond", shape=values.shape, chunks=chunks, shards=shards,
                                         dtype="float32", fill_value=0.0, overwrite=True)
        old[...] = values
        reopened = open_store(store.path)
        assert reopened.root["tiles/respond"].chunks == chunks and reopened.root["tiles/respond"].shards == shards
        np.testing.assert_array_equal(reopened.full_grid().compute(), expected)
