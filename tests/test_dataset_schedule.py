"""The dataset scheduler: tomogram i + 1's phase 1 starts once tomogram i's phase 1 is done (so i's phase 2 and
finalize overlap it), never more than ``in_flight`` tomograms at once, and the stores do not depend on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_dataset_run import config, data  # noqa: F401  (the fixture, shared)
from test_resume_faults import assert_same_store

import tomocam.pipeline.schedule as pipeline_schedule
from tomocam.dataset import explain_dataset

# The bad tomogram is written with mrcfile, which warns about what the test wants.
pytestmark = pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")


def record_steps(monkeypatch) -> list[tuple[str, str]]:
    """Patch TomogramRun so that ``(step, store name)`` is recorded as each run submits, completes phase 1 and
    finishes (in the order they happen)."""
    events: list[tuple[str, str]] = []
    run = pipeline_schedule.TomogramRun
    submit, phase1_done, finish = run.submit, run.phase1_done, run.finish

    def name(self) -> str:
        return Path(self.writer.path).stem

    monkeypatch.setattr(run, "submit", lambda self: events.append(("submit", name(self))) or submit(self))
    monkeypatch.setattr(run, "phase1_done", lambda self: events.append(("phase 1 done", name(self)))
                        or phase1_done(self))

    def finished(self):
        result = finish(self)
        events.append(("finished", name(self)))
        return result

    monkeypatch.setattr(run, "finish", finished)
    return events


def in_flight_at_most(events: list[tuple[str, str]]) -> int:
    running, most = set(), 0
    for step, name in events:
        if step == "submit":
            running.add(name)
        elif step == "finished":
            running.discard(name)
        most = max(most, len(running))
    return most


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_next_phase_1_starts_when_the_previous_one_is_done_and_in_flight_bounds_the_runs(
        data, client, tmp_path, monkeypatch, in_flight):  # noqa: F811
    events = record_steps(monkeypatch)
    summary = explain_dataset(data["tomograms"], tmp_path / "out", config(data), client=client, in_flight=in_flight)
    assert [r.status for r in summary.rows] == ["complete"] * 3
    order = [f"{step} {name}" for step, name in events]
    names = ["TS_1_tomo", "TS_2_tomo", "TS_3"]
    for a, b in zip(names, names[1:]):  # never two phase 1s at once: b starts after a's phase 1
        assert order.index(f"phase 1 done {a}") < order.index(f"submit {b}")
        if in_flight > 1:  # ... and before a is finished: a's phase 2 and finalize overlap b's phase 1
            assert order.index(f"submit {b}") < order.index(f"finished {a}")
    assert in_flight_at_most(events) == min(in_flight, 2)  # phase 1s one at a time: 2 is the most that overlap
    for row in summary.rows:  # the overlap changes no store
        assert_same_store(tmp_path / "out" / f"{row.name}.zarr", Path(data["references"][row.path].store))


def test_a_tomogram_failing_in_phase_1_leaves_the_one_beside_it_to_finish(data, client, tmp_path, monkeypatch):  # noqa: F811
    import numpy as np
    from explain_models import particles_volume, write_mrc

    volume = particles_volume((32, 32, 32), n=2)[0]
    volume[-1, -1, -1] = np.nan  # found by the last phase-1 block, while the first tomogram's phase 2 runs
    bad = write_mrc(tmp_path / "bad.mrc", volume)
    events = record_steps(monkeypatch)
    summary = explain_dataset([data["tomograms"][0], str(bad), data["tomograms"][2]], tmp_path / "out",
                              config(data), client=client)
    assert [r.status for r in summary.rows] == ["complete", "failed", "complete"]
    assert "NaN or Inf voxels, e.g. at (z, y, x) = (31, 31, 31)" in summary.rows[1].error
    assert ("finished", "bad") not in events
    assert_same_store(tmp_path / "out" / "TS_3.zarr", Path(data["references"][data["tomograms"][2]].store))
