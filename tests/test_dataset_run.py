"""A dataset run on one warm client: its stores equal single runs' stores array by array, its index says what each
tomogram gave, a bad tomogram is recorded while the others complete, and a resumed dataset keeps complete stores
and finishes partial ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc
from test_resume_faults import assert_same_store

import tomocam.pipeline.schedule as pipeline_schedule
from tomocam.cli.report import disk_usage
from tomocam.dataset import explain_dataset, read_index
from tomocam.errors import InputError, OutputError
from tomocam.pipeline import ExplainConfig, explain_tomogram
from tomocam.store import open_store

pytestmark = pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")


@pytest.fixture(scope="module")
def data(tmp_path_factory, client) -> dict:
    """Three tomograms (two share the stem 'tomo'), a model, and the single-run reference store of each."""
    root = tmp_path_factory.mktemp("dataset")
    model = matched_filter_checkpoint(root / "mf.pt")
    shapes = {"TS_1/tomo.mrc": (32, 32, 40), "TS_2/tomo.mrc": (32, 40, 32), "TS_3.mrc": (40, 32, 32)}
    tomograms, references = [], {}
    for i, (name, shape) in enumerate(shapes.items()):
        path = root / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mrc(path, particles_volume(shape, n=3, seed=i)[0])
        tomograms.append(str(path))
        config = ExplainConfig(tomogram=str(path), output=str(root / f"ref{i}.zarr"), model=str(model), block=2)
        references[str(path)] = explain_tomogram(config, client=client)
    return {"root": root, "model": model, "tomograms": tomograms, "references": references}


def config(data, **kw) -> ExplainConfig:
    return ExplainConfig(tomogram="", output="", model=str(data["model"]), block=2, **kw)


def test_dataset_stores_equal_single_run_stores_and_the_index_says_what_each_gave(data, client, tmp_path):
    out = tmp_path / "out"
    summary = explain_dataset(data["tomograms"], out, config(data), client=client, store_size=disk_usage)
    rows = read_index(out)
    assert [r.name for r in rows] == ["TS_1_tomo", "TS_2_tomo", "TS_3"]
    assert summary.rows == rows and not summary.failed and summary.tiles == sum(r.tiles for r in rows)
    for row in rows:
        ref = data["references"][row.path]
        assert_same_store(out / f"{row.name}.zarr", Path(ref.store))
        assert row.status == "complete" and row.tiles == ref.n_tiles and row.seconds > 0
        assert row.store_bytes == disk_usage(out / f"{row.name}.zarr") > 0
        assert row.top_classes == ";".join(f"{c}:{n}" for c, n, _ in ref.top_classes) and row.error == ""


def test_a_bad_tomogram_is_recorded_with_its_reason_and_the_others_complete(data, client, tmp_path):
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"not an MRC" * 100)
    volume = particles_volume((32, 32, 32), n=2)[0]
    volume[20, 3, 4] = np.nan  # found by phase 1 on the worker, after the plan
    nan = write_mrc(tmp_path / "nan.mrc", volume)
    tomograms = [str(junk), data["tomograms"][0], str(nan), data["tomograms"][2]]
    summary = explain_dataset(tomograms, tmp_path / "out", config(data), client=client)
    rows = {r.name: r for r in read_index(tmp_path / "out")}
    assert [r.status for r in rows.values()] == ["failed", "complete", "failed", "complete"]
    assert "cannot be read as an MRC file" in rows["junk"].error
    assert "NaN or Inf voxels, e.g. at (z, y, x) = (20, 3, 4)" in rows["nan"].error
    assert "\n" not in rows["nan"].error
    assert set(summary.failures) == {"junk", "nan"} and all(isinstance(e, InputError)
                                                            for e in summary.failures.values())
    assert_same_store(tmp_path / "out" / "TS_3.zarr", Path(data["references"][data["tomograms"][2]].store))
    with pytest.raises(InputError):
        open_store(tmp_path / "out" / "nan.zarr")  # its partial store does not look complete


def test_resume_keeps_complete_stores_and_finishes_partial_ones(data, client, tmp_path, monkeypatch):
    out = tmp_path / "out"
    finalize = pipeline_schedule.finalize
    calls = []

    def stop_at_second(writer, *args):  # Ctrl-C during the second tomogram's finalize
        calls.append(writer.path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return finalize(writer, *args)

    monkeypatch.setattr(pipeline_schedule, "finalize", stop_at_second)
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(data["tomograms"], out, config(data), client=client)
    # the third tomogram's phase 1 had started beside the second's phase 2 and finalize (two in flight)
    assert [r.status for r in read_index(out)] == ["complete", "interrupted", "interrupted"]
    with pytest.raises(OutputError, match="pass --resume to continue the dataset or --overwrite"):
        explain_dataset(data["tomograms"], out, config(data), client=client)

    monkeypatch.setattr(pipeline_schedule, "finalize", finalize)
    first = (out / "TS_1_tomo.zarr" / "zarr.json").stat().st_mtime_ns
    runs = []
    finish = pipeline_schedule.TomogramRun.finish
    monkeypatch.setattr(pipeline_schedule.TomogramRun, "finish", lambda self: runs.append(finish(self)) or runs[-1])
    summary = explain_dataset(data["tomograms"], out, config(data, resume=True), client=client)
    assert [r.status for r in summary.rows] == ["complete"] * 3 and summary.reused == 1
    assert (out / "TS_1_tomo.zarr" / "zarr.json").stat().st_mtime_ns == first  # kept, not reopened for writing
    assert [Path(r.store).name for r in runs] == ["TS_2_tomo.zarr", "TS_3.zarr"]
    assert runs[0].blocks_computed == 0 and runs[0].blocks_skipped == runs[0].blocks_total  # phase 1 was done
    for row in summary.rows:
        assert_same_store(out / f"{row.name}.zarr", Path(data["references"][row.path].store))
    assert summary.rows[0] == read_index(out)[0] and summary.rows[0].tiles  # the first row kept as it was
