"""``tomocam explain --autocast bf16`` end to end on CPU: GPU runs use it, and nothing in phase 1 may assume float32
activations (maps and logits must still reach the store as float32, close to a float32 run)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster
from explain_models import particles_volume, tiny_cnn_checkpoint, write_mrc

from tomocam.pipeline import ExplainConfig, explain_tomogram


@pytest.mark.slow
def test_bf16_autocast_run_stores_float32_maps_close_to_a_float32_run(tmp_path):
    model = tiny_cnn_checkpoint(tmp_path / "cnn.pt")
    volume, _ = particles_volume((24, 32, 32), n=2)
    mrc = write_mrc(tmp_path / "tomo.mrc", volume)
    tiles = {}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        for autocast in (None, "bf16"):
            out = tmp_path / f"{autocast}.zarr"
            config = ExplainConfig(tomogram=str(mrc), output=str(out), model=str(model), autocast=autocast,
                                   methods=("respond", "gradcam"))
            explain_tomogram(config, client=client)
            tiles[autocast] = zarr.open_group(out, mode="r")["tiles"]
    for name in ("logits", "respond", "gradcam"):
        exact, mixed = tiles[None][name], tiles["bf16"][name]
        assert mixed.dtype == np.float32 and mixed.shape == exact.shape
        x, y = np.asarray(exact[...], dtype=np.float64).ravel(), np.asarray(mixed[...], dtype=np.float64).ravel()
        # bfloat16 keeps ~3 significant digits: the maps agree in direction, not bit for bit (so it was used)
        assert x @ y / (np.linalg.norm(x) * np.linalg.norm(y)) > 0.99, name
        assert not np.array_equal(x, y), name
