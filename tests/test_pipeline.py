"""The explain pipeline end to end on small tomograms with known content, on in-process Dask clusters."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from distributed import Client, LocalCluster
from explain_models import SHAPES, matched_filter_checkpoint, particle, particles_volume, tiny_cnn_checkpoint, write_mrc

import tomocam
from tomocam.models import load_checkpoint, normalise
from tomocam.pipeline import ExplainConfig, explain_tomogram
from tomocam.store import open_store
from tomocam.store.writer import StoreWriter


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"matched": matched_filter_checkpoint(d / "mf.pt"), "cnn": tiny_cnn_checkpoint(d / "cnn.pt")}


def _run(client, tmp_path, volume, model, name="out", **kw):
    mrc = write_mrc(tmp_path / f"{name}.mrc", volume)
    config = ExplainConfig(tomogram=str(mrc), output=str(tmp_path / f"{name}.zarr"), model=str(model), **kw)
    summary = explain_tomogram(config, client=client)
    return open_store(summary.store), summary


@pytest.mark.parametrize("method", ["respond", "gradcam"])
def test_pointing_game_on_known_particles(client, tmp_path, models, method):
    """At each particle centre the stitched map of its true class is the highest (chance: 1 in 3)."""
    volume, truth = particles_volume((48, 48, 48), n=27, seed=3)
    store, summary = _run(client, tmp_path, volume, models["matched"], methods=(method,), block=2)
    heat = store.full_grid(method).compute()  # (k, z, y, x)
    hits = [heat[(slice(None), *c)].argmax() == k for k, c in truth]
    rate = float(np.mean(hits))
    print(f"pointing game {method}: {rate:.2f} over {len(hits)} particles")
    assert rate >= 0.9
    assert summary.blocks_computed == summary.blocks_total


def test_one_tile_tomogram_gives_that_tiles_resized_map(client, tmp_path, models):
    volume = np.random.default_rng(0).standard_normal((16, 16, 16)).astype(np.float32)
    store, _ = _run(client, tmp_path, volume, models["cnn"], methods=("respond", "gradcam"))
    model, meta = load_checkpoint(models["cnn"])
    x = normalise(torch.from_numpy(volume)[None, None], meta.normalisation)
    result = tomocam.compute_cams(model, x, meta.cam_layer or model.default_cam_layer)
    for method in ("respond", "gradcam"):
        expected = tomocam.resize_maps(result.maps[method], (16, 16, 16))[0].numpy()
        np.testing.assert_allclose(store.full_grid(method).compute(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(store.logits[:, 0, 0, 0], result.logits[0].numpy(), rtol=1e-5, atol=1e-6)


def test_a_class_subset_stores_exactly_those_classes_of_a_full_run(client, tmp_path, models):
    """Phase 1 keeps every class's maps as they come when all are asked for, and selects (here reorders) them
    otherwise: the per-tile maps of classes 2 and 0 are those of the full run, bit for bit; logits are all K."""
    volume = np.random.default_rng(4).standard_normal((24, 28, 24)).astype(np.float32)
    methods = ("respond", "gradcam")
    full, _ = _run(client, tmp_path, volume, models["cnn"], name="full", methods=methods, block=2)
    part, _ = _run(client, tmp_path, volume, models["cnn"], name="part", methods=methods, block=2, classes=("c2", "0"))
    assert part.classes == ["c2", "c0"]
    for m in methods:
        np.testing.assert_array_equal(part.root[f"tiles/{m}"][...], full.root[f"tiles/{m}"][...][:, :, :, [2, 0]])
    np.testing.assert_array_equal(part.root["tiles/logits"][...], full.root["tiles/logits"][...])


def test_phase1_bar_counts_every_batch_of_tiles_also_those_before_it_is_shown(client, tmp_path, models,
                                                                              monkeypatch):
    """Phase-1 tasks start before the progress display exists; the tiles their batches report meanwhile are
    counted and added when it appears, so the bar reaches the total from events alone (not from the final
    update)."""
    from tomocam.pipeline import schedule as run_module
    from tomocam.progress import progress_bars

    seen = {}

    class Bars:  # the real display, late (as when rich is imported), recording the phase-1 count before the run
        def __init__(self, **kw):  # sets it to the total
            time.sleep(1.0)  # the first blocks report meanwhile
            self.bars = progress_bars(**kw)

        def __enter__(self):
            bars = self.bars.__enter__()
            update = bars.update

            def record(task, **kw):
                if "completed" in kw and task == 0:
                    seen["by events"] = bars.tasks[0].completed
                update(task, **kw)

            bars.update = record
            return bars

        def __exit__(self, *exc):
            return self.bars.__exit__(*exc)

    monkeypatch.setattr(run_module, "progress_bars", Bars)
    volume = np.random.default_rng(2).standard_normal((32, 32, 40)).astype(np.float32)
    _, summary = _run(client, tmp_path, volume, models["cnn"], block=2, batch_size=3)
    assert seen["by events"] == summary.n_tiles


@pytest.mark.slow
def test_results_do_not_depend_on_workers_or_block_size(client, tmp_path, models):
    volume = np.random.default_rng(1).standard_normal((40, 36, 44)).astype(np.float32)
    a, _ = _run(client, tmp_path, volume, models["cnn"], name="a", block=1, batch_size=5)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cl2:
        with Client(cl2) as c2:
            b, sb = _run(c2, tmp_path, volume, models["cnn"], name="b", block=3, batch_size=5)
    np.testing.assert_allclose(a.full_grid().compute(), b.full_grid().compute(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.logits[...], b.logits[...], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.labels()[...], b.labels()[...])


def test_phase2_reading_maps_class_group_by_class_group_stores_the_same(client, tmp_path, models, monkeypatch):
    """A phase-2 task holds at most ``MAPS_BYTES`` of maps: with a budget of one class's maps (one group per
    class, labels keeping the largest value so far between groups, heatmaps blended class by class) the heatmaps
    and labels equal those of a run that reads and blends every class at once."""
    from tomocam.pipeline import stitch_boxes as phase2
    blend = importlib.import_module("tomocam.stitch.blend")  # the package exports the function blend

    volume, _ = particles_volume((40, 36, 44), n=8, seed=5)
    a, _ = _run(client, tmp_path, volume, models["matched"], name="a", block=2)
    assert len(phase2.class_groups(3, 10)) == 1 and len(phase2.class_groups(3, phase2.MAPS_BYTES)) == 3
    monkeypatch.setattr(phase2, "MAPS_BYTES", 1)
    monkeypatch.setattr(blend, "BLEND_BYTES", 1)
    b, _ = _run(client, tmp_path, volume, models["matched"], name="b", block=2)
    labels = a.labels()[...]
    assert 0.01 < (labels > 0).mean() < 0.99 and len(np.unique(labels)) > 2  # several classes label voxels
    np.testing.assert_array_equal(b.labels()[...], labels)
    np.testing.assert_allclose(b.full_grid().compute(), a.full_grid().compute(), rtol=1e-6, atol=1e-7)
    for level in range(a.n_levels):
        np.testing.assert_allclose(b.heatmap("respond", level)[...], a.heatmap("respond", level)[...], rtol=1e-6,
                                   atol=1e-7)


def test_label_bounds_and_labels_that_need_no_maps(client, tmp_path, models, monkeypatch):
    """Phase 1 stores each tile's and class's largest value and magnitude of the label method's maps; phase 2
    reads no maps for a box where no class may exceed the threshold, and labels it 0."""
    from tomocam.pipeline import stitch_boxes as phase2
    from tomocam.pipeline.plan import make_plan
    from tomocam.stitch.labels import map_bounds

    volume, _ = particles_volume((40, 36, 44), n=8, seed=7)
    store, summary = _run(client, tmp_path, volume, models["matched"], block=2)
    tiles = zarr.open_group(summary.store, mode="r")["tiles"]
    maps = torch.from_numpy(np.asarray(tiles["respond"][...]))  # (*grid, k, *feat)
    np.testing.assert_array_equal(tiles["label_bounds"][...], map_bounds(maps, 3).numpy())
    plan = make_plan(ExplainConfig(tomogram=str(tmp_path / "out.mrc"), output=summary.store,
                                   model=str(models["matched"])), summary.store)
    writer = StoreWriter(plan.store_spec)

    def no_reading(*args, **kwargs):
        raise AssertionError("maps were read")

    monkeypatch.setattr(phase2, "_box_maps", no_reading)
    phase2.write_labels(plan, writer, (0, 0, 0), threshold=2 * float(maps.abs().max()))  # above every voxel's value
    assert not store.labels()[...].any()


def test_workers_run_3d_models_channels_last_on_a_cpu_too(tmp_path, models):
    """3-D convolutions run 1.4x faster channels-last on a CPU as well (oneDNN; CNN-1 and CNN-2, 2-core machine),
    so a CPU worker converts the model as a GPU worker does; the maps are the same to float rounding (the
    one-tile test above, and tests/test_explain_cam.py)."""
    from tomocam.pipeline.explain_tiles import _model
    from tomocam.pipeline.plan import make_plan

    mrc = write_mrc(tmp_path / "v.mrc", np.zeros((16, 16, 16), np.float32))
    out = str(tmp_path / "v.zarr")
    plan = make_plan(ExplainConfig(tomogram=str(mrc), output=out, model=str(models["cnn"]), device="cpu"), out)
    model, _ = _model(plan)
    weights = [p for p in model.parameters() if p.dim() == 5 and p.shape[1] > 1]  # conv weights, several inputs
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last_3d) and not w.is_contiguous()
                           for w in weights)


def test_shifted_particle_gives_a_shifted_heatmap(client, tmp_path, models):
    """Moving a particle by a multiple of the stride moves its heatmap by the same amount, where the covering
    tiles correspond (tile starts 0, 8, 16, 24 on a 40-voxel axis: x in [8, 24) maps to [16, 32))."""
    volume = np.zeros((40, 40, 40), np.float32)
    volume[16:25, 16:25, 15:24] = particle(SHAPES["rod"])  # centre (20, 20, 19)
    shift = 8
    moved = np.roll(volume, shift, axis=2)
    a, _ = _run(client, tmp_path, volume, models["matched"], name="a")
    b, _ = _run(client, tmp_path, moved, models["matched"], name="b")
    ha, hb = a.full_grid()[..., 8:24].compute(), b.full_grid()[..., 16:32].compute()
    assert np.abs(ha).max() > 0 and ha[2].max() == ha.max()  # the rod's own class is the hottest
    np.testing.assert_allclose(hb, ha, rtol=1e-5, atol=1e-9)


def test_finer_tomogram_is_binned_to_the_models_voxel_size(client, tmp_path, models):
    """The same scene at 5 A/voxel (each 10 A voxel repeated 2x2x2) gives the 10 A run's tiles exactly after
    binning: the same scores, the same heatmap mass per class, 2x2x2 sums matching the 10 A heatmap, and the
    pointing game still won at the particles."""
    coarse, truth = particles_volume((32, 32, 48), n=6, seed=4)
    fine = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    a, _ = _run(client, tmp_path, coarse, models["matched"], name="coarse")
    mrc = write_mrc(tmp_path / "fine.mrc", fine, voxel_size=5.0)
    config = ExplainConfig(tomogram=str(mrc), output=str(tmp_path / "fine.zarr"), model=str(models["matched"]))
    b = open_store(explain_tomogram(config, client=client).store)
    assert b.attrs["tile"] == [32, 32, 32] and b.attrs["model_input"] == [16, 16, 16]
    np.testing.assert_allclose(b.logits[...], a.logits[...], rtol=1e-5, atol=1e-7)
    ha, hb = a.full_grid().compute(), b.full_grid().compute()  # (k, 32, 32, 48) and (k, 64, 64, 96)
    assert hb.shape == (3, 64, 64, 96)
    np.testing.assert_allclose(hb.sum((1, 2, 3)), ha.sum((1, 2, 3)), rtol=2e-3)  # windows sampled finer
    pooled = hb.reshape(3, 32, 2, 32, 2, 48, 2).sum((2, 4, 6))
    # the 10 A maps are at full resolution here, so the 5 A run's linear upsampling softens only their sharpest peaks
    assert np.corrcoef(pooled.ravel(), ha.ravel())[0, 1] > 0.99
    hits = [hb[(slice(None), *(2 * v for v in c))].argmax() == k for k, c in truth]
    assert np.mean(hits) >= 0.8


def test_store_layout_and_metadata(client, tmp_path, models):
    volume, _ = particles_volume((48, 40, 40), n=6, seed=1)
    store, _ = _run(client, tmp_path, volume, models["matched"], methods=("respond", "gradcam"), chunk=16)
    attrs = store.attrs
    assert attrs["complete"] is True and store.classes == ["small", "large", "rod"]
    assert store.n_levels == 3 and store.heatmap("gradcam", 2).shape == (3, 12, 10, 10)
    ms = store.root["respond"].attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 20.0, 20.0, 20.0]
    assert [c["label"] for c in store.root["respond"].attrs["ome"]["omero"]["channels"]] == store.classes
    # level 1 is the 2x2x2 mean of level 0; labels are argmax + 1 above the threshold
    h0 = store.heatmap()[...]
    np.testing.assert_allclose(store.heatmap(level=1)[...], h0.reshape(3, 24, 2, 20, 2, 20, 2).mean((2, 4, 6)),
                               rtol=1e-5, atol=1e-7)
    lab = store.labels()[...]
    expected = np.where(h0.max(0) > attrs["labels"]["threshold"], h0.argmax(0) + 1, 0)
    np.testing.assert_array_equal(lab, expected)
    probs = store.probabilities[...]
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-5)
    assert attrs["model"]["sha256"] and attrs["input"]["shape"] == [48, 40, 40] and attrs["tile"] == [16, 16, 16]
    seg = zarr.open_group(store.path)["labels/segmentation"]
    assert seg.attrs["ome"]["image-label"]["properties"][2] == {"label-value": 3, "class": "rod"}


def test_heatmaps_are_stitched_while_phase_1_runs(client, tmp_path):
    """Streaming: the first level-0 chunk is written before the last phase-1 block is done (file times), and the
    store equals the definition whatever the order (the other tests)."""
    model = matched_filter_checkpoint(tmp_path / "slow.pt", delay=0.05)
    volume, _ = particles_volume((16, 16, 96), n=4, seed=2)
    store, summary = _run(client, tmp_path, volume, model, block=1, chunk=16)  # 1 x 1 x 11 blocks, 6 chunks
    files = Path(store.path)
    first_chunk = min(p.stat().st_mtime for p in (files / "respond" / "0" / "c").rglob("*") if p.is_file())
    last_block = max(p.stat().st_mtime for p in (files / "tiles" / "done" / "c").rglob("*") if p.is_file())
    assert summary.blocks_total == 11 and first_chunk < last_block
