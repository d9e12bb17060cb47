"""What the GPU suite runs on, and the smallest runs of tomocam's device code paths, before anything is timed.

Writes ``env.json`` (python, torch, CUDA, cuDNN, the card, cores, versions of tomocam's dependencies) and prints
``nvidia-smi``, then checks that every dependency imports, that ``python -m tomocam --help`` works, and that
:func:`tomocam.compute_cams` runs on the device with a channels-last CNN-2 in float32 and under bf16 autocast,
giving the same maps up to bf16 rounding. Exits non-zero on the first failure. Usage::

    python3 benchmarks/gpu/env_check.py --device cuda --json logs/env.json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import json
import os
import platform
import shutil
import subprocess
import sys
import time

DEPENDENCIES = ("numpy", "scipy", "pandas", "dask", "distributed", "zarr", "numcodecs", "google-crc32c", "donfig",
                "mrcfile", "gemmi", "starfile", "dask-jobqueue", "tornado", "typer", "click", "rich", "matplotlib",
                "scikit-image", "pyyaml", "psutil", "nvidia-ml-py", "captum")
MODULES = ("dask.array", "distributed", "zarr", "numcodecs", "mrcfile", "gemmi", "starfile", "dask_jobqueue", "typer",
           "tomocam", "tomocam.cli.main", "tomocam.pipeline")


def environment(device: str) -> dict:
    """Versions and hardware, as plain JSON types."""
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available(),
            "cpu_count": os.cpu_count(), "device": device, "card": "cpu"}
    if device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(card=p.name, card_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
                    multiprocessors=p.multi_processor_count, gpus=torch.cuda.device_count())
    versions = {}
    for name in DEPENDENCIES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    info["versions"] = versions
    return info


def smoke(device: str) -> None:
    """compute_cams on ``device`` with a channels-last CNN-2, float32 and bf16 autocast, maps close to each other."""
    import torch

    import tomocam
    from tomocam.models import cnn2

    torch.manual_seed(0)
    model = cnn2().to(device).eval().to(memory_format=torch.channels_last_3d)
    x = torch.randn(8, 1, 40, 40, 40, device=device)  # (8, 1, 40, 40, 40)
    maps = {}
    for cast in (None, torch.bfloat16):
        t0 = time.perf_counter()
        r = tomocam.compute_cams(model, x, model.default_cam_layer, autocast=cast)
        maps[cast] = r.maps["respond"]  # (8, 23, 5, 5, 5)
        assert maps[cast].dtype == torch.float32 and torch.isfinite(maps[cast]).all(), "non-finite maps"
        seconds = time.perf_counter() - t0
        print(f"compute_cams on {device}, autocast={cast}: {tuple(maps[cast].shape)} in {seconds:.2f} s")
    cos = torch.nn.functional.cosine_similarity(maps[None].flatten(), maps[torch.bfloat16].flatten(), dim=0)
    print(f"bf16 vs float32 maps: cosine similarity {float(cos):.4f}")
    assert cos > 0.9, "bf16 maps far from float32 maps"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    if shutil.which("nvidia-smi"):
        subprocess.run(["nvidia-smi"], check=False)
    info = environment(args.device)
    with open(args.json, "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info, indent=1), flush=True)
    for mod in MODULES:
        importlib.import_module(mod)
    print("imports ok")
    subprocess.run([sys.executable, "-m", "tomocam", "--help"], check=True, capture_output=True)
    print(f"{sys.executable} -m tomocam --help ok", flush=True)
    smoke(args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
