"""Chunks a failed write left behind: found by decoding (empty, short, corrupt; not a chunk never written), removed,
and undone by the writer on ``--resume`` (exactly the blocks holding them lose their done marker, and the manifest
forgets every damaged array and what derives from it)."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import zarr
from explain_models import tiny_cnn_checkpoint, write_mrc

from tomocam.errors import OutputError
from tomocam.pipeline import ExplainConfig, make_plan
from tomocam.store.damage import chunk_path, damaged_chunks, remove_chunks
from tomocam.store.manifest import record_whole, whole_arrays
from tomocam.store.writer import StoreWriter


def spoil(array: zarr.Array, index: tuple[int, ...], how: str) -> None:
    path = chunk_path(array, index)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "short": data[: len(data) // 2],
                      "garbage": bytes(255 - b for b in data[:64]) + data[64:]}[how])


@pytest.mark.parametrize("compressed", [True, False], ids=["blosc", "raw"])
def test_empty_short_and_corrupt_chunks_are_found_and_absent_ones_are_not(tmp_path, compressed):
    options = {} if compressed else {"compressors": None}
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=(8, 8, 6), chunks=(2, 4, 6), dtype="float32",
                              fill_value=0.0, **options)
    array[:6] = np.random.default_rng(1).standard_normal((6, 8, 6)).astype(np.float32)  # chunks (3, *) not stored
    assert damaged_chunks(array) == []
    spoil(array, (0, 1, 0), "empty")
    spoil(array, (2, 0, 0), "short")
    if compressed:  # raw bytes of the right length decode to something: only a codec can tell them corrupt
        spoil(array, (1, 1, 0), "garbage")
    expected = [(0, 1, 0), *([(1, 1, 0)] if compressed else []), (2, 0, 0)]
    assert damaged_chunks(array) == expected
    remove_chunks(array, expected)
    assert damaged_chunks(array) == []
    assert not np.asarray(array[0:2, 4:8]).any()  # removed: read as the fill value, as never written


def test_an_io_error_while_reading_is_raised_not_taken_for_damage(tmp_path, monkeypatch):
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=(4,), chunks=(2,), dtype="float32", fill_value=0.0)
    array[:] = 1.0

    def failing(self, *args, **kwargs):
        raise RuntimeError("Input/output error (os error 5)")

    monkeypatch.setattr(zarr.Array, "get_block_selection", failing)
    with pytest.raises(OutputError) as info:
        damaged_chunks(array)
    assert info.value.errno == errno.EIO


@pytest.fixture
def written(tmp_path):
    """A writer whose four phase-1 blocks are all done and recorded whole, with phase 2 recorded whole too."""
    mrc = write_mrc(tmp_path / "t.mrc", np.zeros((24, 24, 32), np.float32))
    model = tiny_cnn_checkpoint(tmp_path / "m.pt")
    out = str(tmp_path / "o.zarr")
    plan = make_plan(ExplainConfig(tomogram=str(mrc), output=out, model=str(model), block=1, chunk=8,
                                   heatmap_step=1), out)
    writer = StoreWriter.open(plan.store_spec, resume=False, overwrite=False, command="test")
    rng = np.random.default_rng(0)
    k, feat = len(plan.class_indices), plan.feature_shape
    for block in plan.blocks:
        n = block.n_tiles
        maps = rng.standard_normal((n, k, *feat)).astype(np.float32)
        bounds = np.stack([maps.reshape(n, k, -1).max(-1), np.abs(maps).reshape(n, k, -1).max(-1)], -1)
        writer.write_block(block, rng.standard_normal((n, len(plan.model_classes))).astype(np.float32), bounds,
                           {"respond": maps})
    writer.record_tiles_whole()
    assert writer.start_stitching()
    writer.record_stitched_whole()
    return plan, writer


def test_a_damaged_tile_chunk_unmarks_exactly_its_block_and_forgets_what_derives(written):
    plan, writer = written
    root = zarr.open_group(plan.output, mode="r")
    assert len(plan.blocks) > 2 and writer.done_blocks() == {b.index for b in plan.blocks}
    victim = plan.blocks[-1]
    chunk = (*(s.start // c for s, c in zip(victim.grid_slices, root["tiles/logits"].chunks)), 0)  # (*tiles, K)
    spoil(root["tiles/logits"], chunk, "short")
    resumed = StoreWriter.open(plan.store_spec, resume=True, overwrite=False, command="test --resume")
    assert resumed.done_blocks() == {b.index for b in plan.blocks} - {victim.index}
    whole = whole_arrays(plan.output)
    assert "tiles/logits" not in whole and "tiles/respond" in whole  # the damaged array alone, of the tiles
    assert not any(name.startswith(("respond/", "labels/")) for name in whole)  # derived: to be rebuilt
    assert not chunk_path(root["tiles/logits"], chunk).exists()
    assert resumed.drop_damaged_chunks() == {}  # nothing left


def test_a_damaged_heatmap_chunk_is_removed_and_its_level_forgotten(written):
    plan, writer = written
    level0 = zarr.open_group(plan.output, mode="r")["respond/0"]
    level0[...] = np.ones(level0.shape, level0.dtype)  # stored chunks to damage
    record_whole(plan.output, "respond/0")
    spoil(level0, (0, 0, 0, 0), "garbage")
    assert writer.drop_damaged_chunks() == {"respond/0": 1}
    assert writer.done_blocks() == {b.index for b in plan.blocks}  # no block recomputed for a phase-2 chunk
    assert "respond/0" not in whole_arrays(plan.output) and "tiles/respond" in whole_arrays(plan.output)
    assert writer.start_stitching()  # phase 2 runs again
