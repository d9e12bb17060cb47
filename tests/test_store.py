"""The explain store's writers and reader: output checks, completion marker, pyramid levels, labels, scores."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from tomocam.errors import InputError, OutputError
from tomocam.store import open_store
from tomocam.store.create import create_root, prepare_output
from tomocam.store.layout import TILE_CHUNK_BYTES, n_levels_for, tile_chunk_shape
from tomocam.store.manifest import forget_whole, is_whole, record_whole, whole_arrays, write_completion_marker
from tomocam.store.ome import level_transforms
from tomocam.store.pyramid import (
    downsample_mean,
    heatmap_pyramid,
    label_block,
    label_pyramid,
    write_scores,
)


def test_prepare_output_refuses_existing_and_unwritable(tmp_path):
    (tmp_path / "x.zarr").mkdir()
    with pytest.raises(OutputError, match="exists already"):
        prepare_output(tmp_path / "x.zarr", resume=False, overwrite=False)
    with pytest.raises(OutputError, match="not a zarr store"):
        prepare_output(tmp_path / "x.zarr", resume=True, overwrite=False)
    assert prepare_output(tmp_path / "x.zarr", resume=False, overwrite=True) == str(tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot write output"):
        prepare_output(tmp_path / "file" / "o.zarr", resume=False, overwrite=False)


def test_reader_refuses_incomplete_and_foreign_stores(tmp_path):
    with pytest.raises(InputError, match="not a zarr store"):
        open_store(tmp_path / "nothing.zarr")
    zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    with pytest.raises(InputError, match="not a tomocam explain store"):
        open_store(tmp_path / "foreign.zarr")
    path = str(tmp_path / "s.zarr")
    create_root(path, {"classes": ["a"], "methods": ["respond"], "input": {"path": "t.mrc", "voxel_size": [1, 2, 3]},
                       "levels": 1})
    with pytest.raises(InputError, match="incomplete"):
        open_store(path)
    write_completion_marker(path)
    store = open_store(path)
    assert store.voxel_size == (1, 2, 3) and store.classes == ["a"] and store.input_path == "t.mrc"


def test_levels_and_transforms():
    assert n_levels_for((64, 64, 64), 64) == 1
    assert n_levels_for((100, 300, 300), 64) == 4  # 300 -> 150 -> 75 -> 37
    assert level_transforms((2.0, 2.0, 2.0), 2, channel=False) == [
        {"type": "scale", "scale": [8.0, 8.0, 8.0]}, {"type": "translation", "translation": [3.0, 3.0, 3.0]}]


def test_tile_maps_inner_chunks_divide_the_block_and_fit_the_budget():
    ceiling, cnn2 = 4 * 23 * 10**3, 4 * 23 * 5**3  # bytes per tile: 23 classes of 10^3 and 5^3 cells
    assert tile_chunk_shape((8, 8, 8), ceiling) == (2, 2, 2)  # 4^3 tiles would be 5.9 MB
    assert tile_chunk_shape((8, 8, 8), cnn2) == (4, 4, 4)
    assert tile_chunk_shape((6, 6, 6), cnn2) == (3, 3, 3)  # 4 does not divide 6
    assert tile_chunk_shape((7, 7, 7), cnn2) == (1, 1, 1)
    assert tile_chunk_shape((8, 8), ceiling) == (2, 2)
    assert tile_chunk_shape((2, 2, 2), TILE_CHUNK_BYTES + 1) == (1, 1, 1)  # a tile beyond the budget: one per chunk
    assert tile_chunk_shape((2, 2, 2), TILE_CHUNK_BYTES // 8) == (2, 2, 2)


def test_pyramid_labels_and_scores_match_their_definitions(tmp_path):
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    heat = np.random.default_rng(0).standard_normal((3, 9, 8, 10)).astype(np.float32)
    level1 = heat[:, :8].reshape(3, 4, 2, 4, 2, 5, 2).mean((2, 4, 6))
    np.testing.assert_allclose(downsample_mean(heat), level1, rtol=1e-6, atol=1e-6)
    levels = heatmap_pyramid(heat, 3)
    assert len(levels) == 3 and levels[0] is heat
    np.testing.assert_allclose(levels[1], level1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(levels[2], level1[:, :, :, :4].reshape(3, 2, 2, 2, 2, 2, 2).mean((2, 4, 6)),
                               rtol=1e-6, atol=1e-6)
    best = heat.argmax(0)
    expected = np.where((heat.max(0) > 0.5) & (best != 1), best + 1, 0)
    labels = label_block(heat, threshold=0.5, ignore=(1,))
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels, expected)
    label_levels = label_pyramid(labels, 2)
    np.testing.assert_array_equal(label_levels[0], expected)
    np.testing.assert_array_equal(label_levels[1], expected[:8:2, ::2, ::2])  # voxel 0 of each 2 (f=2: offset 0)
    logits = np.random.default_rng(1).standard_normal((3, 4, 2, 5)).astype(np.float32)  # (gz, gy, gx, K)
    tiles = root.create_array("logits", shape=logits.shape, chunks=(2, 2, 2, 5), dtype="float32")
    tiles[...] = logits
    scores = root.create_group("scores")
    write_scores(tiles, scores)
    np.testing.assert_array_equal(scores["logits"][...], np.moveaxis(logits, -1, 0))
    e = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(scores["probabilities"][...], np.moveaxis(e / e.sum(-1, keepdims=True), -1, 0),
                               rtol=1e-5)


def test_pyramids_of_boxes_are_the_parts_of_the_whole_arrays_pyramids():
    """Phase 2 builds every level of its box from memory: for boxes starting at multiples of 2**(levels - 1), the
    levels of each box are exactly its part of the whole array's levels (odd edges included)."""
    rng = np.random.default_rng(3)
    heat = rng.standard_normal((2, 13, 19, 11)).astype(np.float32)
    labels = rng.integers(0, 4, (13, 19, 11)).astype(np.uint8)
    whole_heat, whole_labels = heatmap_pyramid(heat, 3), label_pyramid(labels, 3)
    np.testing.assert_allclose(whole_heat[2], heat[:, :12, :16, :8].reshape(2, 3, 4, 4, 4, 2, 4).mean((2, 4, 6)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(whole_labels[2], labels[1:13:4, 1:17:4, 1:9:4])  # voxel 1 of each 4 (centre)
    for lo in [(0, 0, 0), (4, 8, 4), (8, 16, 8), (4, 0, 8)]:
        hi = tuple(min(a + 8, n) for a, n in zip(lo, labels.shape))
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        for level, (h, lab) in enumerate(zip(heatmap_pyramid(heat[(slice(None), *box)], 3),
                                             label_pyramid(labels[box], 3))):
            part = tuple(slice(a >> level, (a >> level) + ((b - a) >> level)) for a, b in zip(lo, hi))
            np.testing.assert_allclose(h, whole_heat[level][(slice(None), *part)], rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(lab, whole_labels[level][part])


def test_manifest_records_whole_arrays_and_the_reader_refuses_disagreement(tmp_path):
    path = str(tmp_path / "s.zarr")
    root = create_root(path, {"classes": ["a"], "methods": ["respond"], "levels": 1,
                              "input": {"path": "t.mrc", "voxel_size": [1, 1, 1]}})
    root.create_group("respond").create_array("0", shape=(1, 4, 4, 4), chunks=(1, 2, 2, 2), dtype="float32")
    root.create_array("extra", shape=(3,), dtype="uint8")
    assert not is_whole(path, ["respond/0"])
    with pytest.raises(OutputError, match="'respond/0' is not known to be whole"):
        write_completion_marker(path)  # the marker needs every array recorded
    record_whole(path, "respond/0", "extra")
    assert is_whole(path, ["respond/0", "extra"]) and whole_arrays(path)["respond/0"] == {
        "shape": [1, 4, 4, 4], "dtype": "float32"}
    write_completion_marker(path)
    open_store(path)
    forget_whole(path, "extra")  # e.g. being rewritten
    assert not is_whole(path, ["extra"]) and is_whole(path, ["respond/0"])
    with pytest.raises(InputError, match="damaged: array 'extra' is not known to be whole"):
        open_store(path)
    record_whole(path, "extra")
    zarr.open_group(path, mode="r+").create_array("extra", shape=(4,), dtype="uint8", overwrite=True)
    with pytest.raises(InputError, match=r"damaged: array 'extra' is .*\[4\].*manifest says .*\[3\]"):
        open_store(path)
    del zarr.open_group(path, mode="r+")["extra"]
    with pytest.raises(InputError, match="damaged: array 'extra' is missing"):
        open_store(path)
    root = zarr.open_group(path, mode="r+")
    attrs = dict(root.attrs["tomocam"])
    del attrs["arrays"]
    root.attrs["tomocam"] = attrs
    with pytest.raises(InputError, match="no manifest"):
        open_store(path)


def test_stores_go_through_zarrs_unless_the_user_chose_a_pipeline(tmp_path):
    """Importing ``tomocam.store`` selects the zarrs codec pipeline, whose arrays read back byte for byte what
    zarr-python's own pipeline wrote (and the other way round); a pipeline set through zarr's environment
    variable is left alone."""
    import os
    import subprocess
    import sys

    script = ("import sys, numpy as np, zarr\n"
              "import tomocam.store\n"
              "print(zarr.config.get('codec_pipeline.path'))\n"
              "a = zarr.open_array(sys.argv[1], mode='a', shape=(6, 70, 70), chunks=(1, 64, 64), dtype='float32')\n"
              "if sys.argv[2] == 'write': a[...] = np.arange(a.size, dtype=np.float32).reshape(a.shape)\n"
              "print(float(np.asarray(a[...]).sum()))")
    env = {k: v for k, v in os.environ.items() if k != "ZARR_CODEC_PIPELINE__PATH"}
    chosen = {**env, "ZARR_CODEC_PIPELINE__PATH": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
    expected = float(np.arange(6 * 70 * 70, dtype=np.float32).sum())
    for writer, reader in [(env, chosen), (chosen, env)]:
        path = str(tmp_path / f"a{len(writer)}.zarr")
        runs = [subprocess.run([sys.executable, "-c", script, path, mode], env=e, capture_output=True, text=True,
                               check=True).stdout.split() for e, mode in [(writer, "write"), (reader, "read")]]
        assert [r[0] for r in runs] == [("zarrs.ZarrsCodecPipeline" if e is env else
                                         "zarr.core.codec_pipeline.BatchedCodecPipeline") for e in (writer, reader)]
        assert [float(r[1]) for r in runs] == [expected, expected]


def test_resume_removes_only_the_temporary_files_of_cut_short_writes(tmp_path):
    from tomocam.store.create import remove_partial_writes

    store = tmp_path / "s.zarr"
    (store / "respond" / "0").mkdir(parents=True)
    keep = [store / "zarr.json", store / "respond" / "0" / "zarr.json", store / "notes.partial"]
    gone = [store / "zarr.0123456789abcdef0123456789abcdef.partial",
            store / "respond" / "0" / "c.fedcba9876543210fedcba9876543210.partial"]
    for path in keep + gone:
        path.write_text("x")
    assert remove_partial_writes(str(store)) == 2
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)
