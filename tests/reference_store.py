"""A fixed small explain run and the digest of every array and attribute of its store, to pin the store's bytes.

``python tests/reference_store.py`` (from the repository root, with ``tests`` on the path) rewrites
``tests/data/reference_store.json`` from the code as it is: do that only when a change of the store format is
intended. :mod:`test_store_bytes` rebuilds the store and compares it with that file, array by array.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc

REFERENCE = Path(__file__).parent / "data" / "reference_store.json"

#: Root attributes that name this machine's paths, the time a run took or the command line: not part of the format.
VOLATILE = {"timings", "command", "model", "input", "fingerprint"}


def build_reference_store(folder: Path, client) -> Path:
    """Explain a fixed synthetic tomogram (27 particles of 3 classes, 40x44x36 voxels) with the matched-filter
    model, both methods, 2-tile blocks and 16-sample chunks (several blocks, chunks and pyramid levels)."""
    import torch

    from tomocam.pipeline import ExplainConfig, explain_tomogram

    torch.manual_seed(0)
    volume, _ = particles_volume((40, 44, 36), n=27, seed=5)
    mrc = write_mrc(folder / "reference.mrc", volume)
    model = matched_filter_checkpoint(folder / "mf.pt")
    config = ExplainConfig(tomogram=str(mrc), output=str(folder / "reference.zarr"), model=str(model),
                           methods=("respond", "gradcam"), block=2, chunk=16)
    return Path(explain_tomogram(config, client=client).store)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_digest(path: Path) -> dict[str, Any]:
    """Per array: shape, chunks, dtype, the sha256 of its decoded values and of its ``zarr.json`` (codecs, fill
    value); per group: the sha256 of its attributes (the root's without :data:`VOLATILE` keys)."""
    root = zarr.open_group(str(path), mode="r")
    arrays, groups = {}, {}
    for name, node in sorted(root.members(max_depth=None), key=lambda m: m[0]):
        if isinstance(node, zarr.Array):
            values = _sha(np.ascontiguousarray(node[...]).tobytes())
            arrays[name] = {"shape": list(node.shape), "chunks": list(node.chunks), "dtype": str(node.dtype),
                            "values": values, "metadata": _sha((path / name / "zarr.json").read_bytes())}
        else:
            groups[name] = _sha(json.dumps(dict(node.attrs), sort_keys=True).encode())
    attrs = dict(root.attrs["tomocam"])
    kept = {k: v for k, v in attrs.items() if k not in VOLATILE and k != "version"}
    groups[""] = _sha(json.dumps(kept, sort_keys=True).encode())
    return {"arrays": arrays, "groups": groups}


if __name__ == "__main__":
    import tempfile

    from distributed import Client, LocalCluster

    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                                            dashboard_address=":0") as cluster, Client(cluster) as c:
        store = build_reference_store(Path(tmp), c)
        REFERENCE.write_text(json.dumps(store_digest(store), indent=1, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE}")
