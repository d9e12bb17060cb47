"""Benchmark of a dataset run: the same tomograms explained one ``tomocam explain`` process each against one
``tomocam explain`` of the whole dataset. Prints a table.

Models and tomograms are those of ``bench_explain.py`` (its helpers: ``make_model``, ``make_tomogram``, the
forward-only child): ``ceiling``, the near-zero-cost model whose rate is the pipeline's own, and ``cnn2``. Every run
is the real command line in a child process, wall time from its start to its exit (Python, torch, the cluster and
the model included), on ``--device``:

- ``one each``: ``tomocam explain TOMOGRAM -o STORE`` per tomogram, one after another;
- ``dataset``: ``tomocam explain FOLDER -o OUT``, every tomogram on one cluster.

Columns: ``t/s`` tiles per second of wall time; ``x`` the dataset's rate over one-each's; ``fixed`` seconds per
tomogram outside its phases: for one-each the mean of (wall - phases), for the dataset the first tomogram's (the
start: from launch to its completion line, minus its phases) and the median over the others of (time between two
completion lines - the later one's phases; below zero where the pipelining overlaps a tomogram's phases with
the one before it), read from the dataset's log lines as they come; ``run/fwd`` the
dataset's wall-time rate over the forward-only rate (the mean of a child of its own right before and one right
after the dataset run: on a shared machine the rate moves with the load, and both are in the JSON);
``/phases`` the dataset's wall-time rate over one-each's rate counted over its phases alone; ``peak MiB`` the
largest peak resident memory of a one-each process against the dataset process's (bounded by ``--in-flight``,
not by the number of tomograms).

    python benchmarks/bench_dataset.py                       # 8 tomograms of 96x320x320, both models
    python benchmarks/bench_dataset.py --tomograms 4 --models ceiling
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr
from bench_explain import make_model, make_tomogram, run_child

import tomocam

BENCH = Path(__file__).resolve().parent
# The real command line, with bench_explain's architectures registered (as its own children do).
CLI = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import bench_explain; "
       "from tomocam.cli.main import main; sys.argv = ['tomocam', 'explain', *sys.argv[1:]]; main()")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI, str(BENCH), *args]


def phases(store: Path) -> float:
    """Phase 1 + 2 + finalize seconds of a store's run, as it recorded them."""
    return float(zarr.open_group(str(store), mode="r").attrs["tomocam"]["timings"]["total"])


def run_cli(args: list[str], on_line=None) -> tuple[float, int]:
    """Run the command line with ``args``; ``on_line(seconds since launch)`` for each stdout line that reports a
    completed tomogram. Returns its wall seconds and its peak resident memory in MiB (its own, from ``wait4``)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cli(*args), stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        for line in proc.stdout:
            if on_line is not None and line.startswith("[") and ": complete," in line:
                on_line(time.perf_counter() - t0)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode:
            err.seek(0)
            sys.exit(f"run failed ({' '.join(args[:3])} ...):\n{err.read()[-3000:]}")
    return wall, usage.ru_maxrss // 1024


def one_each(tomograms: list[Path], model: Path, out: Path, args) -> dict:
    """Every tomogram in its own process: total wall, total phase seconds, tiles, the largest peak memory."""
    wall, phase, tiles, peak = 0.0, 0.0, 0, 0
    for i, mrc in enumerate(tomograms):
        store = out / f"single{i}.zarr"
        seconds, mib = run_cli([str(mrc), "--model", str(model), "-o", str(store), "--device", args.device,
                                "--batch-size", str(args.batch), "--overwrite", "--no-progress"])
        wall, peak = wall + seconds, max(peak, mib)
        phase += phases(store)
        tiles += int(np.prod(zarr.open_group(str(store), mode="r")["tiles/logits"].shape[:-1]))
    return {"wall": wall, "phases": phase, "tiles": tiles, "peak_mib": peak}


def dataset(folder: Path, model: Path, out: Path, args) -> dict:
    """One dataset run: its wall, the times of its per-tomogram completion lines (seconds after launch), its
    peak memory."""
    shutil.rmtree(out, ignore_errors=True)
    done: list[float] = []
    wall, peak = run_cli([str(folder), "--model", str(model), "-o", str(out), "--device", args.device,
                          "--batch-size", str(args.batch), "--in-flight", str(args.in_flight), "--no-progress"],
                         on_line=done.append)
    from tomocam.dataset import read_index

    rows = read_index(out)
    return {"wall": wall, "done": done, "phases": [r.seconds for r in rows], "tiles": sum(r.tiles for r in rows),
            "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tomograms", type=int, default=8, help="tomograms in the dataset (default 8)")
    parser.add_argument("--shape", type=int, nargs=3, default=(96, 320, 320), help="z y x (default 96 320 320)")
    parser.add_argument("--models", default="ceiling,cnn2", help="comma-separated: ceiling, cnn2")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=None, help="tiles per batch (default 32, cuda 256)")
    parser.add_argument("--in-flight", type=int, default=2, help="the dataset run's --in-flight (default 2; 1: no "
                        "overlap between tomograms, so 'fixed' is each later tomogram's own cost)")
    parser.add_argument("--tmp", default=None, help="folder for inputs and stores (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = parser.parse_args()
    args.batch = args.batch or (256 if args.device.startswith("cuda") else 32)
    shape = tuple(args.shape)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        source = make_tomogram(tmp, shape)
        folder = tmp / "dataset"
        folder.mkdir()
        tomograms = []
        for i in range(args.tomograms):  # the same voxels under distinct names: the work per tomogram is equal
            tomograms.append(folder / f"tomo{i:02d}.mrc")
            os.link(source, tomograms[-1])
        for name in args.models.split(","):
            model = make_model(tmp, name)
            single = one_each(tomograms, model, tmp, args)
            forward = name == "cnn2"  # the forward-only rate just before and just after the dataset run
            before = run_child(source, model, tmp / "fwd.zarr", args, "respond", True)["forward"] if forward else None
            data = dataset(folder, model, tmp / "out", args)
            after = run_child(source, model, tmp / "fwd.zarr", args, "respond", True)["forward"] if forward else None
            fwd = (before + after) / 2 if before and after else None
            row = report_row(name, single, data, fwd, len(tomograms))
            rows.append({**row, "forward_before_after": [before, after]})
            print(f"{name}: {json.dumps(rows[-1])}", flush=True)
    print_table(rows, args, shape)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))


def report_row(name: str, single: dict, data: dict, fwd: float | None, n: int) -> dict:
    """The table's numbers for one model."""
    done, ph = data["done"], data["phases"]
    gaps = [b - a - p for a, b, p in zip(done, done[1:], ph[1:])]
    return {
        "model": name, "tomograms": n, "tiles": data["tiles"],
        "one_each_wall_s": single["wall"], "one_each_tiles_per_s": single["tiles"] / single["wall"],
        "one_each_fixed_s": (single["wall"] - single["phases"]) / n,
        "one_each_phase_tiles_per_s": single["tiles"] / single["phases"],
        "dataset_wall_s": data["wall"], "dataset_tiles_per_s": data["tiles"] / data["wall"],
        "speedup": (data["tiles"] / data["wall"]) / (single["tiles"] / single["wall"]),
        "dataset_first_fixed_s": done[0] - ph[0] if done else None,
        "dataset_fixed_after_first_s": float(np.median(gaps)) if gaps else None,
        "dataset_wall_per_tomogram_s": float(np.median(np.diff(done))) if len(done) > 1 else None,
        "dataset_phases_per_tomogram_s": float(np.median(ph)),
        "completion_times_s": done, "phase_seconds": ph,
        "dataset_exit_s": data["wall"] - done[-1] if done else None,
        "forward_tiles_per_s": fwd,
        "run_over_forward": (data["tiles"] / data["wall"]) / fwd if fwd else None,
        "over_phases": (data["tiles"] / data["wall"]) / (single["tiles"] / single["phases"]),
        "one_each_peak_mib": single["peak_mib"], "dataset_peak_mib": data["peak_mib"],
    }


def print_table(rows: list[dict], args, shape) -> None:
    load = os.getloadavg()[0]
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "no GPU"
    print(f"\ndataset benchmark, tomocam {tomocam.__version__}, {time.strftime('%Y-%m-%d %H:%M')}: "
          f"{rows[0]['tomograms'] if rows else 0} tomograms of {'x'.join(map(str, shape))}, 23 classes, 40^3 tiles, "
          f"batch {args.batch}, in flight {args.in_flight}, device {args.device} ({gpu}), {os.cpu_count()} CPU cores "
          f"({cpu}), torch {torch.__version__}, load average {load:.2f}")
    head = (f"{'model':>8} {'tiles':>6} {'one each s':>10} {'t/s':>6} {'fixed s':>7} {'dataset s':>9} {'t/s':>6} "
            f"{'x':>5} {'first s':>7} {'per tomo':>8} {'phases':>6} {'fixed s':>7} {'exit s':>6} {'fwd t/s':>7} "
            f"{'run/fwd':>7} {'/phases':>7} {'peak MiB':>11}")
    print(head)
    print("-" * len(head))

    def f(v, spec):
        return format(v, spec) if v is not None else format("-", spec[0] + spec[1:].split(".")[0])

    for r in rows:
        print(f"{r['model']:>8} {r['tiles']:>6} {r['one_each_wall_s']:>10.1f} {r['one_each_tiles_per_s']:>6.0f} "
              f"{r['one_each_fixed_s']:>7.2f} {r['dataset_wall_s']:>9.1f} {r['dataset_tiles_per_s']:>6.0f} "
              f"{r['speedup']:>5.2f} {f(r['dataset_first_fixed_s'], '>7.2f')} "
              f"{f(r['dataset_wall_per_tomogram_s'], '>8.2f')} {r['dataset_phases_per_tomogram_s']:>6.2f} "
              f"{f(r['dataset_fixed_after_first_s'], '>7.2f')} {f(r['dataset_exit_s'], '>6.2f')} "
              f"{f(r['forward_tiles_per_s'], '>7.0f')} {f(r['run_over_forward'], '>7.2f')} {r['over_phases']:>7.2f} "
              f"{r['one_each_peak_mib']:>5}/{r['dataset_peak_mib']:<5}")
    print("one each: fixed = wall - phases per process; dataset: first = the start and the first tomogram's "
          "overhead; per tomo = wall between two completion lines, phases = a tomogram's phase seconds, fixed = "
          "their difference (medians over the later tomograms: below 0 when a tomogram's phases overlap the one "
          "before it); exit = after the last completion line; peak MiB: the largest one-each process / the dataset "
          "process")
    ceiling = [r for r in rows if r["model"] == "ceiling"]
    if ceiling:
        us = 1e6 / ceiling[0]["dataset_tiles_per_s"]
        print(f"host cost per tile (ceiling model, dataset wall time): {us:.0f} us = {1e6 / us:.0f} tiles/s at most "
              "on this machine for any device's forward rate")


if __name__ == "__main__":
    main()
