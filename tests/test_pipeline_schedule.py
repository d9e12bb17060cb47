"""The scheduler's steps driven by hand, as a multi-tomogram scheduler drives them: results routed to
``on_result``, label boxes only once phase 1 is complete, ``finish`` writing a complete store equal to the one
``run_plan`` writes."""

from __future__ import annotations

import numpy as np
from distributed import as_completed
from explain_models import particles_volume, tiny_cnn_checkpoint, write_mrc

from tomocam.pipeline import ExplainConfig
from tomocam.pipeline.explain_tiles import BlockResult
from tomocam.pipeline.run import prepare_run
from tomocam.pipeline.schedule import TomogramRun
from tomocam.store import open_store


def test_two_runs_driven_by_one_loop_phase_by_phase(client, tmp_path):
    model = tiny_cnn_checkpoint(tmp_path / "m.pt")
    runs, futures_of = [], {}
    for i in range(2):
        mrc = write_mrc(tmp_path / f"t{i}.mrc", particles_volume((24, 28, 32), n=4, seed=i)[0])
        config = ExplainConfig(tomogram=str(mrc), output=str(tmp_path / f"o{i}.zarr"), model=str(model), block=1,
                               chunk=8, heatmap_step=1)
        plan, writer = prepare_run(config, config.output, None, None)
        runs.append(TomogramRun(plan, writer, client, resume=False, label_fraction=0.1))
    pending = as_completed()
    for f in runs[0].submit():
        futures_of[f.key] = runs[0]
        pending.add(f)
    started, seen = [True, False], {0: [], 1: []}
    for future in pending:
        run = futures_of[future.key]
        i = runs.index(run)
        result = future.result()
        seen[i].append(("block" if isinstance(result, BlockResult) else "box", run.phase1_complete))
        for f in run.on_result(result):
            futures_of[f.key] = run
            pending.add(f)
        if runs[0].phase1_complete and not started[1]:  # tomogram 2's phase 1 starts when tomogram 1's is done
            started[1] = True
            for f in runs[1].submit():
                futures_of[f.key] = runs[1]
                pending.add(f)
    for i, run in enumerate(runs):
        n_blocks, n_boxes = len(run.plan.blocks), int(np.prod(run.plan.chunk_grid))
        blocks = [done for kind, done in seen[i] if kind == "block"]
        assert len(blocks) == n_blocks and not any(blocks)  # every block before phase 1 was complete
        assert len(seen[i]) == n_blocks + 2 * n_boxes  # a heatmap and a label task per box
        assert n_boxes > 1
        summary = run.finish()
        assert summary.blocks_computed == n_blocks
        store = open_store(summary.store)  # complete: every array recorded whole, the marker set
        assert store.labels()[...].shape == run.plan.tomogram.shape
