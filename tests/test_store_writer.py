"""The writing side of the store: the output check every run and ``--dry-run`` share, and the writer's steps
(what a resumed run finds done, what phase 2 and finalize write). The bytes a whole run writes through it:
tests/test_store_bytes.py."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from explain_models import tiny_cnn_checkpoint, write_mrc

from tomocam.errors import OutputError
from tomocam.pipeline import ExplainConfig, make_plan
from tomocam.store.create import check_output, heatmap_levels, prepare_output
from tomocam.store.writer import StoreWriter


def _outcome(check, path, **flags) -> str:
    try:
        return str(check(path, **flags) is not None)
    except OutputError as err:
        return str(err).split(":")[0]


def test_dry_run_check_and_real_run_agree_and_the_check_touches_nothing(tmp_path):
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "chunk").write_text("")
    (tmp_path / "file").write_text("")
    cases = [(tmp_path / "new" / "o.zarr", False, False), (tmp_path / "x.zarr", False, False),
             (tmp_path / "x.zarr", True, False), (tmp_path / "file" / "o.zarr", False, False),
             (tmp_path / "x.zarr", False, True)]  # the last one deletes x.zarr when prepared
    for path, resume, overwrite in cases:
        before = sorted(os.listdir(tmp_path))
        verdict = _outcome(check_output, path, resume=resume, overwrite=overwrite)
        assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "x.zarr" / "chunk").exists()
        assert verdict == _outcome(prepare_output, path, resume=resume, overwrite=overwrite), path
    assert check_output(tmp_path / "y.zarr", resume=False, overwrite=False) == "create"
    (tmp_path / "y.zarr").mkdir()
    assert check_output(tmp_path / "y.zarr", resume=False, overwrite=True) == "overwrite"
    (tmp_path / "y.zarr" / "zarr.json").write_text("{}")
    assert check_output(tmp_path / "y.zarr", resume=True, overwrite=False) == "resume"


@pytest.fixture
def writer(tmp_path):
    mrc = write_mrc(tmp_path / "t.mrc", np.zeros((24, 24, 32), np.float32))
    model = tiny_cnn_checkpoint(tmp_path / "m.pt")
    out = str(tmp_path / "o.zarr")
    plan = make_plan(ExplainConfig(tomogram=str(mrc), output=out, model=str(model), block=2, chunk=8,
                                   heatmap_step=1), out)
    return plan, StoreWriter.open(plan.store_spec, resume=False, overwrite=False, command="test")


def test_a_block_is_done_only_with_its_tiles_and_a_resumed_writer_finds_it(writer):
    plan, w = writer
    block = plan.blocks[1]
    n, k, feat = block.n_tiles, len(plan.class_indices), plan.feature_shape
    logits = np.arange(n * len(plan.model_classes), dtype=np.float32).reshape(n, -1)
    maps = np.random.default_rng(0).standard_normal((n, k, *feat)).astype(np.float32)
    bounds = np.stack([maps.reshape(n, k, -1).max(-1), np.abs(maps).reshape(n, k, -1).max(-1)], -1)
    assert w.done_blocks() == set()
    w.write_block(block, logits, bounds, {"respond": maps})
    again = StoreWriter.open(plan.store_spec, resume=True, overwrite=False, command="test --resume")
    assert again.done_blocks() == {block.index}
    assert again.block_peak(block) == pytest.approx(float(maps.max()))
    root = zarr.open_group(plan.output, mode="r")
    np.testing.assert_array_equal(root["tiles/logits"][block.grid_slices].reshape(n, -1), logits)
    np.testing.assert_array_equal(again.tile_maps("respond", block.grid_slices, slice(0, k)).reshape(maps.shape),
                                  maps)
    assert root.attrs["tomocam"]["command"] == "test --resume"


def test_phase2_levels_are_forgotten_before_and_recorded_after_stitching(writer):
    plan, w = writer
    assert w.start_stitching()  # nothing is whole yet: phase 2 writes every level
    levels = heatmap_levels(w.spec)
    assert levels >= 2 and plan.sampling.sample_shape[0] >= 16
    pyramid = [np.full((1, 8 >> n, 8 >> n, 8 >> n), n + 1.0, np.float32) for n in range(levels)]
    w.write_heatmaps("respond", slice(1, 2), (8, 0, 0), pyramid)  # the box of level-0 chunk (1, 0, 0), class 1
    w.record_stitched_whole()
    assert not w.start_stitching()  # proven whole: a resumed run skips phase 2
    level1 = zarr.open_group(plan.output, mode="r")["respond/1"]
    np.testing.assert_array_equal(level1[1, 4:8, 0:4, 0:4], 2.0)
    assert not np.asarray(level1[0]).any() and not np.asarray(level1[1, :4]).any()
