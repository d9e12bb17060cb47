"""Benchmark of ``tomocam explain``: whole runs against the model's own forward-only rate, the pipeline's ceiling
(a near-zero-cost model), store size, and scaling to 8x the volume. Prints a table.

Models (untrained, 23 classes, 40^3 inputs, 10 A): ``ceiling`` is a 4x average pool and one Linear layer (the
CAM layer is the pool), so a run's time is the pipeline's own cost; ``cnn2`` is the paper's CNN-2. Each run is a
child process (its peak RSS is its own) with an in-process Dask worker on ``--device``; the run's seconds are
phases 1 + 2 + finalize (``RunSummary.seconds['total']``, cluster start excluded). Forward-only (a child of its
own, so it adds nothing to a run's peak memory): the same tiles, cut and normalised in advance on the device,
through ``model(x)`` alone (channels-last, as the explain workers run it). On a GPU the worker has the GPU resource
(one phase-1 task at a time) and half the CPU cores as threads for phase 2, which also stitches on the GPU.

Each row is the median of ``--repeat`` runs (default 3, with ``--quick`` 1; shared machines vary by 20-40% between
runs), its run seconds those of the run with the median total. Repeats go round the rows (each row once, then
again), so a slow spell of the machine does not fall on one row alone, and each explain run of a model with a
forward-only rate comes right after a forward-only run of its own: ``run/fwd`` is the median of these pairs'
ratios (``pairs`` their range), ``fwd t/s`` the median forward-only rate, ``p1/fwd`` the same for phase 1 alone
(on a CPU phase 1 keeps every core busy, so it bounds what a whole run can reach there).

    python benchmarks/bench_explain.py                          # CPU: 96x320x320 and 8x that, both models
    python benchmarks/bench_explain.py --device cuda --quick    # GPU: one 256x928x928 run of each model (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tomocam.models import register_architecture


class PoolLinear(nn.Module):
    """The ceiling model: ``(n, 1, 40, 40, 40)`` -> 4x average pool ``(n, 1, 10, 10, 10)`` -> Linear -> 23 logits."""

    def __init__(self, num_classes: int = 23, input_size: int = 40):
        super().__init__()
        self.features = nn.Sequential(nn.AvgPool3d(4))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear((input_size // 4) ** 3, num_classes))
        self.default_cam_layer = "features.0"

    def forward(self, x):
        return self.classifier(self.features(x))


@register_architecture("bench-pool-linear")
def pool_linear(num_classes: int = 23, input_size: int = 40) -> nn.Module:
    return PoolLinear(num_classes, input_size)


ARCHS = {"ceiling": "bench-pool-linear", "cnn2": "cnn2"}


def make_model(folder: Path, name: str) -> Path:
    import tomocam
    from tomocam.models import build_model

    torch.manual_seed(0)
    return tomocam.save_checkpoint(build_model(ARCHS[name]), folder / f"{name}.pt",
                                   classes=[f"c{i}" for i in range(23)], input_size=40, voxel_size=10.0)


def make_tomogram(folder: Path, shape: tuple[int, int, int]) -> Path:
    """Gaussian noise, float32, 10 A voxels, written slab by slab."""
    import mrcfile

    path = folder / f"tomo_{'x'.join(map(str, shape))}.mrc"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    with mrcfile.new_mmap(path, shape=shape, mrc_mode=2, overwrite=True) as mrc:
        for z in range(0, shape[0], 16):
            n = min(16, shape[0] - z)
            mrc.data[z : z + n] = rng.standard_normal((n, *shape[1:]), dtype=np.float32)
        mrc.voxel_size = 10.0
    return path


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forward_only(mrc: Path, model_path: Path, batch: int, device: str, limit: int = 4096) -> float:
    """Tiles/s of bare forward inference (``model(x)``, no CAMs) on up to ``limit`` tiles of the explain grid,
    cut and normalised in advance on ``device`` (one warm-up batch first)."""
    from tomocam.models import load_checkpoint
    from tomocam.models.inputs import InputSpec, model_inputs
    from tomocam.read import open_tomogram
    from tomocam.tile import TileGrid, make_blocks, read_slab, slab_starts

    model, meta = load_checkpoint(model_path, device=device)
    model = model.to(memory_format=torch.channels_last_3d)  # as the explain workers run it
    tomo = open_tomogram(mrc)
    grid = TileGrid.build(tomo.shape, meta.input_size)
    (block,) = make_blocks(grid, max(grid.grid_shape))
    edge = max(1, round((limit / block.n_tiles) ** (1 / 3) * max(block.shape)))
    block = make_blocks(grid, edge)[0]
    slab, origin = read_slab(tomo.array(), grid, block)
    spec = InputSpec(grid.tile, grid.tile, meta.normalisation)
    volume = torch.from_numpy(slab).to(device)
    x = model_inputs(volume, slab_starts(grid, block, origin).tolist(), spec)  # (n, 1, 40, 40, 40)
    with torch.no_grad():
        model(x[:batch])
        _sync(device)
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
        _sync(device)
    return len(x) / (time.perf_counter() - t0)


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def child(args: argparse.Namespace) -> None:
    """One explain run, or with ``--forward`` the forward-only rate alone; prints JSON.

    Torch uses the cores this process may run on (``taskset`` limits them); on a GPU a short warm-up run first.
    """
    from distributed import Client, LocalCluster

    from tomocam.pipeline import ExplainConfig, explain_tomogram

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if args.forward:
        print(json.dumps({"forward": forward_only(Path(args.mrc), Path(args.model), args.batch, args.device)}))
        return
    if args.device.startswith("cuda"):  # CUDA context and kernels warmed outside the timings
        forward_only(Path(args.mrc), Path(args.model), args.batch, args.device, limit=args.batch)
    methods = tuple(args.methods.split(","))
    config = ExplainConfig(tomogram=args.mrc, output=args.out, model=args.model, batch_size=args.batch,
                           overwrite=True, methods=methods, device=args.device)
    # On a GPU: one worker with the GPU resource (one phase-1 task at a time) and CPU threads beside it for the
    # phase-2 tasks, which stitch on the GPU too; on a CPU: one thread, torch using every core.
    gpu = args.device.startswith("cuda")
    threads = max(1, (os.cpu_count() or 1) // 2) if gpu else 1
    with LocalCluster(n_workers=1, threads_per_worker=threads, processes=False, dashboard_address=":0",
                      resources={"GPU": 1} if gpu else None) as cluster:
        with Client(cluster) as client:
            summary = explain_tomogram(config, client=client)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tiles": summary.n_tiles, "seconds": summary.seconds, "peak_mib": peak,
                      "store_bytes": _folder_bytes(Path(args.out)), "tomo_bytes": Path(args.mrc).stat().st_size}))


def run_child(mrc: Path, model: Path, out: Path, args, methods: str, forward: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--mrc", str(mrc), "--model-path", str(model), "--out", str(out),
           "--batch", str(args.batch), "--device", args.device, "--methods", methods] + (["--forward"] * forward)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"benchmark run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict]) -> dict:
    """The run with the median total time (the lower middle one of an even number), with every run's total; where
    the runs were paired with forward-only rates, ``forward`` is their median and ``ratios`` each pair's
    run / forward tiles/s."""
    ordered = sorted(runs, key=lambda r: r["seconds"]["total"])
    out = {**ordered[(len(ordered) - 1) // 2], "totals": [r["seconds"]["total"] for r in runs]}
    if runs[0].get("forward"):
        out["forward"] = float(np.median([r["forward"] for r in runs]))
        out["ratios"] = [r["tiles"] / r["seconds"]["total"] / r["forward"] for r in runs]
        out["phase1_ratios"] = [r["tiles"] / r["seconds"]["phase1"] / r["forward"] for r in runs]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=None, help="z y x (default 96 320 320; "
                        "--quick: 256 928 928)")
    parser.add_argument("--models", default="ceiling,cnn2", help="comma-separated: ceiling, cnn2")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=None, help="tiles per batch (default 32, cuda 256)")
    parser.add_argument("--quick", action="store_true", help="one run per model, Respond-CAM only, no 8x run")
    parser.add_argument("--repeat", type=int, default=None, help="runs of each row (default 3, --quick 1): the row "
                        "is the run with the median total time, forward-only the median rate; shared machines vary "
                        "by 20-40%%")
    parser.add_argument("--tmp", default=None, help="folder for inputs and stores (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the rows as JSON ({'rows': [...]}) to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mrc", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", dest="model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--methods", default="respond", help=argparse.SUPPRESS)
    parser.add_argument("--forward", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch is None:
        args.batch = 256 if args.device.startswith("cuda") else 32
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.child:
        child(args)
        return
    shape = tuple(args.shape or ((256, 928, 928) if args.quick else (96, 320, 320)))
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        runs = []  # (model, shape, methods, forward?)
        for name in args.models.split(","):
            runs.append((name, shape, "respond", True))
            if not args.quick:
                runs.append((name, shape, "respond,gradcam", True))
        if not args.quick:
            runs.append(("ceiling", tuple(2 * s for s in shape), "respond", False))
        inputs = []
        for name, shp, _, _ in runs:
            if not (tmp / f"{name}.pt").exists():
                make_model(tmp, name)
            inputs.append((tmp / f"{name}.pt", make_tomogram(tmp, shp)))
        # Repeats go round the rows (every row once, then again), so that a slow spell of the machine falls on
        # every row alike and the ratios between rows (8x / 1x) do not depend on when it came. Each run of a row
        # with a forward-only rate is paired with a forward-only run just before it: its ratio compares the two
        # under the same spell of the machine, and the row's ratio is the median of its pairs'.
        results: list[list[dict]] = [[] for _ in runs]
        for rep in range(args.repeat):
            for i, ((name, shp, methods, forward), (model, mrc)) in enumerate(zip(runs, inputs)):
                fwd = run_child(mrc, model, tmp / "out.zarr", args, methods, True)["forward"] if forward else None
                results[i].append({**run_child(mrc, model, tmp / "out.zarr", args, methods, False), "forward": fwd})
                print(f"repeat {rep + 1}: {name} {'x'.join(map(str, shp))} {methods}: "
                      f"{json.dumps(results[i][-1])}", flush=True)  # kept if cut short
        rows = [(name, shp, methods, median_run(found)) for (name, shp, methods, _), found in zip(runs, results)]
        table = print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": table}, indent=1))


def print_table(rows, args) -> list[dict]:
    """Print the table (and the scaling and host-cost lines); return its rows as dicts."""
    load = os.getloadavg()[0]
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "no GPU"
    print(f"\nexplain benchmark: 23 classes, 40^3 tiles, stride 20, batch {args.batch}, device {args.device} ({gpu}), "
          f"{os.cpu_count()} CPU cores, load average {load:.2f}")
    head = (f"{'model':>8} {'tomogram (z,y,x)':>16} {'methods':>15} {'tiles':>6} {'fwd t/s':>8} {'run t/s':>8} "
            f"{'run/fwd':>7} {'pairs':>11} {'p1/fwd':>6} {'phase1':>6} {'phase2':>6} {'final':>6} {'us/tile':>7} "
            f"{'store/tomo':>10} {'peak MiB':>8}")
    print(head)
    print("-" * len(head))
    out = []
    for name, shp, methods, r in rows:
        s = r["seconds"]
        rate = r["tiles"] / s["total"]
        fwd, ratios = r.get("forward"), r.get("ratios")
        ratio = f"{np.median(ratios):.2f}" if ratios else "-"
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
        p1 = f"{np.median(r['phase1_ratios']):.2f}" if ratios else "-"
        print(f"{name:>8} {'x'.join(map(str, shp)):>16} {methods:>15} {r['tiles']:>6} {fwd or float('nan'):>8.0f} "
              f"{rate:>8.0f} {ratio:>7} {spread:>11} {p1:>6} {s['phase1']:>6.2f} {s['phase2']:>6.2f} "
              f"{s['finalize']:>6.2f} {1e6 * s['total'] / r['tiles']:>7.0f} "
              f"{r['store_bytes'] / r['tomo_bytes']:>10.3f} {r['peak_mib']:>8.0f}")
        out.append({"model": name, "tomogram": "x".join(map(str, shp)), "methods": methods, "tiles": r["tiles"],
                    "forward_tiles_per_s": fwd, "run_tiles_per_s": rate,
                    "run_over_forward": float(np.median(ratios)) if ratios else None, "pair_ratios": ratios,
                    "phase1_over_forward": float(np.median(r["phase1_ratios"])) if ratios else None,
                    "phase1_s": s["phase1"], "phase2_s": s["phase2"], "finalize_s": s["finalize"],
                    "host_us_per_tile": 1e6 * s["total"] / r["tiles"],
                    "store_over_tomogram": r["store_bytes"] / r["tomo_bytes"], "peak_mib": r["peak_mib"],
                    "load_average": load})
    base = [r for n, shp, m, r in rows if n == "ceiling" and m == "respond"]
    if len(base) == 2:
        (a, b) = base
        print(f"\n8x volume (ceiling model): {b['seconds']['total'] / a['seconds']['total']:.2f}x the time, "
              f"{b['peak_mib'] / a['peak_mib']:.2f}x the peak memory")
    if any(r.get("ratios") for *_, r in rows):
        print("p1/fwd: phase 1 alone against the forward-only rate, paired as run/fwd; on a CPU, where phase 1 keeps "
              "every core busy, no whole run can do better")
    if base:
        us = 1e6 * base[0]["seconds"]["total"] / base[0]["tiles"]
        print(f"host cost per tile (ceiling model, whole run): {us:.0f} us = {1e6 / us:.0f} tiles/s at most on this "
              "machine, whatever the device's forward rate")
    return out


if __name__ == "__main__":
    main()
