"""A recipe that makes heatmaps localise particles, and its measurement on simulated tomograms.

Two stages, each a sequence of ``tomocam`` commands (printed as they run, with their wall time):

``train``
    (a) training data for tomograms from real complexes: ``tomocam simulate subtomograms`` with particles shifted
    up to ``--max-shift`` voxels (half the default explain stride, so every particle sits in some tile's central
    cell), ``--distractors`` partly visible neighbours, a ``background`` class, and each box's SNR drawn
    log-uniformly in ``[--min-snr, --snr]``; (b) CNN-2 and CNN-1 trained on it (``tomocam train``, both at once,
    each with its own ``--time-limit`` when given; no dropout unless ``--dropout-cnn1/--dropout-cnn2``).
``evaluate``
    (c) test tomograms with ``tomocam simulate tomogram`` (the same complexes, ``-n`` particles, one seed, at each
    SNR: the same particles, only the noise differs); (d) ``tomocam explain`` with Respond-CAM and Grad-CAM at
    each layer asked (a finer layer trades class evidence for resolution), tiles every ``--stride`` voxels (10:
    tiles overlap by three quarters); (e) ``tomocam evaluate localisation`` (pointing game on the particle and at
    any particle of its class, class at the particle centre, picks F1, beside chance and the no-model baseline),
    one JSON per run and a summary table (``summary.md``).

``all`` runs both. Usage (from the repository root)::

    python benchmarks/localisation_recipe.py all OUT [--structures DIR] [-n BOXES_PER_CLASS] [--epochs-cnn2 E]
        [--epochs-cnn1 E] [--time-limit-cnn2 MIN] [--time-limit-cnn1 MIN] [--dropout-cnn1 P] [--fc-width W]
        [--device cpu|cuda] [--jobs J] [--models-dir DIR] [--runs cnn2:features.pool2 ...] [--snrs 1 0.3]
        [--stride S] [--dark]

On a GPU machine, ``train`` alone (e.g. ``--device cuda -j 16 -n 700 --epochs-cnn2 200 --epochs-cnn1 60
--time-limit-cnn2 0.6 --time-limit-cnn1 0.6``), then ``evaluate --models-dir DIR`` wherever the checkpoints are.

The tomogram SNR is ``var(signal) / var(noise)`` over the whole volume (see ``tomocam simulate tomogram``), a
training box's over the box; the fraction of voxels a particle fills is of the same order in both (a few percent),
and the training SNR range brackets the test SNRs, so the scales need not match exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The six complexes of the paper's 23 classes that are among the real maps here (README of structures-10A).
COMPLEXES = ("1qvr", "1s3x", "1u6g", "2cg9", "3cf3", "3gl1")
MODELS = ("cnn2", "cnn1")


def tomocam(*args: str) -> list[str]:
    """The command line of ``tomocam ARGS`` with this interpreter (the package of this checkout)."""
    return [sys.executable, "-m", "tomocam", *args]


def shown(cmd: list[str]) -> str:
    """``cmd`` as a shell line for people to read: ``tomocam ...``, absolute paths relative to the working folder.

    Printed command lines go into documentation; paths of the machine that ran them would mean nothing elsewhere.
    """
    args = ["tomocam", *cmd[3:]] if cmd[:3] == tomocam() else cmd
    return shlex.join(os.path.relpath(a) if os.path.isabs(a) else a for a in args)


def run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` (printed first), its output appended to ``log``; exit on failure. Returns the wall time."""
    print("$ " + shown(cmd), flush=True)
    t0 = time.time()
    with open(log, "a") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env())
    seconds = time.time() - t0
    print(f"  {seconds:.1f} s", flush=True)
    if done.returncode != 0:
        sys.exit(f"failed (exit {done.returncode}); see {log}")
    return seconds


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def structure_args(folder: Path) -> list[str]:
    missing = [n for n in COMPLEXES if not (folder / f"{n}.mrc").is_file()]
    if missing:
        sys.exit(f"structures folder '{folder}' lacks {', '.join(m + '.mrc' for m in missing)}")
    return [a for n in COMPLEXES for a in ("-s", str(folder / f"{n}.mrc"))]


def train_stage(args: argparse.Namespace, out: Path) -> None:
    log = out / "train.log"
    data = out / "train.zarr"
    run(tomocam("simulate", "subtomograms", str(data), "-n", str(args.n), *structure_args(args.structures),
                "--snr", str(args.snr), "--min-snr", str(args.min_snr), "--max-shift", str(args.max_shift),
                "--distractors", str(args.distractors), "--background", "--seed", "1", "-j", str(args.jobs),
                "--overwrite"), log)
    cmds = []
    for arch in MODELS:
        epochs = args.epochs_cnn2 if arch == "cnn2" else args.epochs_cnn1
        limit = args.time_limit_cnn2 if arch == "cnn2" else args.time_limit_cnn1
        dropout = args.dropout_cnn2 if arch == "cnn2" else args.dropout_cnn1
        cmd = tomocam("train", str(data), "-o", str(out / f"{arch}.pt"), "-a", arch, "--epochs", str(epochs),
                      "--batch-size", str(args.batch_size), "--dropout", str(dropout), "--fc-width", str(args.fc_width),
                      "--seed", "1", "--device", args.device, "--overwrite")
        if limit is not None:
            cmd += ["--time-limit", str(limit)]
        if args.device == "cpu":
            cmd += ["--threads", str(max(1, args.jobs // len(MODELS)))]
        cmds.append(cmd)
    # both networks train at once: on a GPU each leaves most of it idle; on CPU each gets its share of the cores
    t0 = time.time()
    procs = []
    for arch, cmd in zip(MODELS, cmds):
        print("$ " + shown(cmd), flush=True)
        fh = open(out / f"train-{arch}.log", "w")
        procs.append((arch, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env()), fh))
    failed = []
    for arch, proc, fh in procs:
        if proc.wait() != 0:
            failed.append(arch)
        fh.close()
    print(f"  training: {time.time() - t0:.1f} s", flush=True)
    if failed:
        sys.exit(f"training failed for {', '.join(failed)}; see {out}/train-*.log")
    for arch in MODELS:
        last = (out / f"train-{arch}.log").read_text().strip().splitlines()[-1]
        print(f"  {arch}: {last}", flush=True)


def evaluate_stage(args: argparse.Namespace, out: Path) -> None:
    log = out / "evaluate.log"
    models = args.models_dir or out
    results = out / "results"
    results.mkdir(exist_ok=True)
    pending: list = []  # evaluations run in the background while the next tomogram is explained
    rows: list = []
    for snr in args.snrs:
        tomo = out / f"tomo-snr{snr}.mrc"
        run(tomocam("simulate", "tomogram", str(tomo), "--shape", args.shape, "-n", str(args.particles),
                    *structure_args(args.structures), "--snr", str(snr), "--seed", "7", "--overwrite"), log)
        truth = tomo.with_name(tomo.stem + "_particles.csv")
        for arch, layer in (r.split(":") for r in args.runs):
            name = f"{arch}-{layer.split('.')[-1]}-snr{snr}"
            store = out / f"{name}.zarr"
            seconds = run(tomocam("explain", str(tomo), "-o", str(store), "--model", str(models / f"{arch}.pt"),
                                  "--layer", layer, "-m", "respond", "-m", "gradcam", "--stride", str(args.stride),
                                  "--device", args.device, "--overwrite", "--no-progress"), log)
            pending.append(((arch, layer, snr, seconds), localise(store, truth, results / f"{name}.json")))
            collect(pending, rows, out / "summary.md", wait=False)
    if args.dark:
        # dark contrast (raw reconstructions): the first tomogram negated, explained with --invert; the baseline
        # then takes the smoothed minimum (the model's "bright" flipped by --invert)
        snr, (arch, layer) = args.snrs[0], args.runs[0].split(":")
        tomo = out / f"tomo-snr{snr}-dark.mrc"
        negate(out / f"tomo-snr{snr}.mrc", tomo)
        name = f"{arch}-{layer.split('.')[-1]}-snr{snr}-dark"
        store = out / f"{name}.zarr"
        seconds = run(tomocam("explain", str(tomo), "-o", str(store), "--model", str(models / f"{arch}.pt"),
                              "--layer", layer, "-m", "respond", "-m", "gradcam", "--stride", str(args.stride),
                              "--invert", "--device", args.device, "--overwrite", "--no-progress"), log)
        truth = out / f"tomo-snr{snr}_particles.csv"
        pending.append(((arch, layer, f"{snr} dark", seconds), localise(store, truth, results / f"{name}.json")))
    collect(pending, rows, out / "summary.md", wait=True)
    print(summary_table(rows))


def collect(pending: list, rows: list, summary: Path, *, wait: bool) -> None:
    """Move the finished evaluations (all of them, waiting, when ``wait``) from ``pending`` into ``rows`` and rewrite
    ``summary`` with them: a run cut short keeps the table of what it finished. Exits when an evaluation failed."""
    for item in list(pending):
        key, (proc, result) = item
        if not wait and proc.poll() is None:
            continue
        if proc.wait() != 0:
            sys.exit(f"evaluation failed; see {result.with_suffix('.err')}")
        pending.remove(item)
        rows.append((*key, json.loads(result.read_text())))
        summary.write_text(summary_table(rows))


def localise(store: Path, truth: Path, result: Path) -> tuple[subprocess.Popen, Path]:
    """Start ``tomocam evaluate localisation STORE TRUTH --json > result`` (errors beside it, ``.err``)."""
    cmd = tomocam("evaluate", "localisation", str(store), str(truth), "--json")
    print("$ " + shown(cmd) + f" > {os.path.relpath(result)} &", flush=True)
    with open(result, "w") as fh, open(result.with_suffix(".err"), "w") as err:
        return subprocess.Popen(cmd, stdout=fh, stderr=err, env=_env()), result


def negate(src: Path, dst: Path) -> None:
    """Write ``-src`` (an MRC tomogram) to ``dst`` with the same voxel size: dark particles on a bright background."""
    import mrcfile

    with mrcfile.open(src, permissive=False) as mrc:
        data, voxel = np.negative(mrc.data), mrc.voxel_size.copy()
    with mrcfile.new(dst, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel


def summary_table(rows: list[tuple[str, str, str, float, dict]]) -> str:
    """A markdown table: per model, layer and SNR, pointing (on the particle, at any of its class) / class accuracy /
    picks F1 of each method, the baseline and chance."""
    lines = ["| model | layer | SNR | method | pointing | pointing, any of the class | class at centre | picks F1 | "
             "best F1 (threshold) | explain s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arch, layer, snr, seconds, r in rows:
        for method in ("respond", "gradcam"):
            m = r["methods"][method]
            lines.append(f"| {arch} | {layer} | {snr} | {method} | {m['pointing']:.3f} | "
                         f"{m['pointing_any_instance']:.3f} | {m['class_accuracy']:.3f} | {m['picks']['f1']:.3f} | "
                         f"{m['picks']['best_f1']:.3f} ({m['picks']['best_threshold']:.3g}) | {seconds:.0f} |")
        b, c = r["baseline"], r["chance"]
        lines.append(f"| {arch} | {layer} | {snr} | no model | {b['pointing']:.3f} | {b['pointing_any_instance']:.3f} "
                     "| - | - | - | |")
        lines.append(f"| {arch} | {layer} | {snr} | chance | {c['pointing']:.3f} | {c['pointing_any_instance']:.3f} | "
                     f"{c['class_accuracy']:.3f} | {c['picks_f1']:.3f} | - | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["train", "evaluate", "all"])
    p.add_argument("out", type=Path, help="Output folder (created).")
    p.add_argument("--structures", type=Path, default=ROOT.parent / "shared" / "data" / "structures-10A",
                   help="Folder of the 10 A maps (default: ../shared/data/structures-10A).")
    p.add_argument("-n", type=int, default=200, help="Training boxes per class.")
    p.add_argument("--snr", type=float, default=1.0, help="Highest training SNR.")
    p.add_argument("--min-snr", type=float, default=0.25, help="Lowest training SNR.")
    p.add_argument("--max-shift", type=float, default=10.0, help="Shift of the centred particle, voxels.")
    p.add_argument("--distractors", type=float, default=1.0, help="Mean off-centre neighbours per box.")
    p.add_argument("--epochs-cnn2", type=int, default=15)
    p.add_argument("--epochs-cnn1", type=int, default=3)
    p.add_argument("--time-limit-cnn2", type=float, default=None, help="Minutes (tomocam train --time-limit).")
    p.add_argument("--time-limit-cnn1", type=float, default=None, help="Minutes (tomocam train --time-limit).")
    p.add_argument("--dropout-cnn2", type=float, default=0.0, help="Dropout of CNN-2's FC layers (the authors': 0).")
    p.add_argument("--dropout-cnn1", type=float, default=0.0, help="Dropout of CNN-1's FC layers (the authors': 0).")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--fc-width", type=int, default=128,
                   help="Width of the FC layers (the authors' 512 is for 23 classes; 128 keeps CNN-1's checkpoint at "
                        "33 MB instead of 130 MB).")
    p.add_argument("--device", default="cpu", help="cpu or cuda.")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="Simulation processes; CPU threads.")
    p.add_argument("--models-dir", type=Path, default=None, help="Where cnn2.pt/cnn1.pt are (evaluate; default OUT).")
    p.add_argument("--snrs", nargs="+", default=["1", "0.3"], help="Test tomogram SNRs.")
    p.add_argument("--shape", default="100,200,200", help="Test tomogram size z,y,x.")
    p.add_argument("--particles", type=int, default=40, help="Particles per test tomogram.")
    p.add_argument("--stride", type=int, default=10, help="Explain tile step, voxels (tomocam's default is half a "
                   "tile, 20 here; 10 localises better, at 6 times the tiles).")
    p.add_argument("--dark", action="store_true", help="Also the first tomogram negated (dark particles), "
                   "explained with --invert.")
    p.add_argument("--runs", nargs="+", default=[f"{m}:features.{p}" for m in MODELS for p in ("pool2", "pool1")],
                   help="MODEL:LAYER pairs to explain (default: both models at pool2 and pool1).")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    if args.stage in ("train", "all"):
        train_stage(args, out)
    if args.stage in ("evaluate", "all"):
        evaluate_stage(args, out)


if __name__ == "__main__":
    main()
