"""Training on annotated tomograms, measured: boxes cut at the particles of annotated tomograms (``tomocam
extract``) against simulated boxes (``tomocam simulate subtomograms``), both explained on the same held-out
tomograms.

The recipe is a sequence of ``tomocam`` commands (printed as they run, with their wall time):

1. ``tomocam simulate tomogram`` writes ``--tomograms`` tomograms, each with its particle table (the annotations).
2. Route **extracted**: ``tomocam extract`` cuts boxes at the particles of every tomogram (``--per-particle``
   boxes moved by up to ``--max-shift`` voxels, background boxes away from every particle); ``tomocam train
   --split-by tomogram --test-tomograms ...`` holds the last ``--held-out`` tomograms out, so its test accuracy is
   accuracy on tomograms the network never saw.
3. Route **simulated** (as ``benchmarks/localisation_recipe.py``): ``tomocam simulate subtomograms`` with the same
   shapes, box, shifts, neighbours, a background class and an SNR range; ``tomocam train`` (split by box).
   Both networks train at once, each on its share of the cores, for the same epochs.
4. Each held-out tomogram is explained with each network (``tomocam explain``, Respond-CAM and Grad-CAM), measured
   with ``tomocam evaluate localisation --json`` (class at centre, pointing game, picks F1, beside chance and the
   no-model baseline), and picked with ``tomocam picks --truth``.

Usage (from the repository root)::

    python benchmarks/annotated_recipe.py OUT [--tomograms 6] [--held-out 2] [--shape 48,120,120] [-n 40]
        [--shapes shell,rod,ring,disc] [--voxel-size 20] [--box 24] [--snr 1] [--per-particle 4] [--max-shift 6]
        [--epochs 15] [--time-limit MIN] [--stride 6] [--jobs 2]

It prints a table per held-out tomogram and route, and writes it to ``OUT/summary.md``; ``OUT/*.log`` hold the
commands' output and ``OUT/results/*.json`` each evaluation.
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

ROOT = Path(__file__).resolve().parents[1]
ROUTES = ("extracted", "simulated")


def tomocam(*args: str) -> list[str]:
    """The command line of ``tomocam ARGS`` with this interpreter (the package of this checkout)."""
    return [sys.executable, "-m", "tomocam", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def show(cmd: list[str]) -> str:
    return shlex.join(["tomocam", *cmd[3:]] if cmd[:3] == tomocam() else cmd)


def run(cmd: list[str], log: Path, stdout: Path | None = None) -> float:
    """Run ``cmd`` (printed first), its output appended to ``log`` (stdout to ``stdout`` when given); exit on
    failure. Returns the wall time."""
    print("$ " + show(cmd) + (f" > {stdout.name}" if stdout else ""), flush=True)
    t0 = time.time()
    with open(log, "a") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        out = open(stdout, "w") if stdout else fh
        done = subprocess.run(cmd, stdout=out, stderr=fh, env=_env())
        if stdout:
            out.close()
    seconds = time.time() - t0
    print(f"  {seconds:.1f} s", flush=True)
    if done.returncode != 0:
        sys.exit(f"failed (exit {done.returncode}); see {log}")
    return seconds


def run_together(cmds: dict[str, list[str]], out: Path) -> None:
    """Run the commands at once, each logging to ``OUT/<key>.log``; exit if one fails."""
    t0 = time.time()
    procs = []
    for key, cmd in cmds.items():
        print("$ " + show(cmd) + " &", flush=True)
        fh = open(out / f"{key}.log", "w")
        procs.append((key, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env()), fh))
    failed = []
    for key, proc, fh in procs:
        if proc.wait() != 0:
            failed.append(key)
        fh.close()
    print(f"  {time.time() - t0:.1f} s", flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}; see {out}/<name>.log")
    for key in cmds:
        lines = (out / f"{key}.log").read_text().strip().splitlines()
        print(f"  {key}: " + " | ".join(line.strip() for line in lines[-2:]), flush=True)


def simulate_tomograms(args: argparse.Namespace, out: Path) -> list[Path]:
    tomos = []
    for i in range(args.tomograms):
        tomo = out / f"tomo{i + 1}.mrc"
        run(tomocam("simulate", "tomogram", str(tomo), "--shape", args.shape, "-n", str(args.particles),
                    "--shapes", args.shapes, "--voxel-size", str(args.voxel_size), "--snr", str(args.snr),
                    "--seed", str(100 + i), "--overwrite"), out / "simulate.log")
        tomos.append(tomo)
    return tomos


def particles_of(tomo: Path) -> Path:
    return tomo.with_name(tomo.stem + "_particles.csv")


def make_datasets(args: argparse.Namespace, out: Path, tomos: list[Path]) -> None:
    log = out / "data.log"
    radius = 2 * args.voxel_size * 5  # a particle's diameter: built-in shapes fit 10 voxels at 20 A (200 A)
    run(tomocam("extract", *map(str, tomos), *[a for t in tomos for a in ("-p", str(particles_of(t)))],
                "-o", str(out / "extracted.zarr"), "--box", str(args.box), "--per-particle", str(args.per_particle),
                "--max-shift", str(args.max_shift), "--background", args.background, "--radius", str(radius),
                "--seed", "1", "-j", str(args.jobs), "--overwrite"), log)
    n_classes = len(args.shapes.split(","))
    per_class = args.per_particle * args.particles * (args.tomograms - args.held_out) // n_classes
    run(tomocam("simulate", "subtomograms", str(out / "simulated.zarr"), "-n", str(per_class), "--shapes",
                args.shapes, "--voxel-size", str(args.voxel_size), "--box", str(args.box), "--snr", str(args.snr),
                "--min-snr", str(args.min_snr), "--max-shift", str(args.max_shift), "--distractors", "1",
                "--background", "--seed", "1", "-j", str(args.jobs), "--overwrite"), log)


def train(args: argparse.Namespace, out: Path, held: list[str]) -> None:
    common = ["-a", "cnn2", "--epochs", str(args.epochs), "--batch-size", "32", "--fc-width", str(args.fc_width),
              "--seed", "1", "--device", "cpu", "--threads", str(max(1, args.jobs // 2)), "--overwrite"]
    if args.time_limit is not None:
        common += ["--time-limit", str(args.time_limit)]
    cmds = {
        "train-extracted": tomocam("train", str(out / "extracted.zarr"), "-o", str(out / "extracted.pt"),
                                   "--split-by", "tomogram", *[a for t in held for a in ("--test-tomograms", t)],
                                   "--flips", *common),
        "train-simulated": tomocam("train", str(out / "simulated.zarr"), "-o", str(out / "simulated.pt"), "--flips",
                                   *common),
    }
    run_together(cmds, out)


def evaluate(args: argparse.Namespace, out: Path, held_tomos: list[Path]) -> list[tuple[str, str, dict]]:
    log = out / "evaluate.log"
    results = out / "results"
    results.mkdir(exist_ok=True)
    rows = []
    pick_radius = args.voxel_size * 5  # angstrom: a particle's radius
    for tomo in held_tomos:
        for route in ROUTES:
            store = out / f"{tomo.stem}-{route}.zarr"
            run(tomocam("explain", str(tomo), "-o", str(store), "--model", str(out / f"{route}.pt"),
                        "-m", "respond", "-m", "gradcam", "--stride", str(args.stride), "--device", "cpu",
                        "--overwrite", "--no-progress"), log)
            result = results / f"{tomo.stem}-{route}.json"
            run(tomocam("evaluate", "localisation", str(store), str(particles_of(tomo)), "--pick-radius", "5",
                        "--json"), log, stdout=result)
            run(tomocam("picks", str(store), "--radius", str(pick_radius), "--tolerance", str(6 * args.voxel_size),
                        "--truth", str(particles_of(tomo)), "--overwrite"), log)
            rows.append((tomo.stem, route, json.loads(result.read_text())))
            (out / "summary.md").write_text(summary_table(rows, out))
    return rows


def test_accuracy(out: Path, route: str) -> float:
    from tomocam.models import load_checkpoint

    return float(load_checkpoint(out / f"{route}.pt")[1].provenance["test_accuracy"])


def summary_table(rows: list[tuple[str, str, dict]], out: Path) -> str:
    """A markdown table: per held-out tomogram and route, class at centre, pointing (on the particle, at any of
    its class) and picks F1 of each method, the no-model baseline and chance."""
    lines = ["| tomogram | training boxes | method | class at centre | pointing | pointing, any of the class | "
             "picks F1 | best F1 |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for tomo, route, r in rows:
        for method, name in (("respond", "Respond-CAM"), ("gradcam", "Grad-CAM")):
            m = r["methods"][method]
            lines.append(f"| {tomo} | {route} | {name} | {m['class_accuracy']:.3f} | {m['pointing']:.3f} | "
                         f"{m['pointing_any_instance']:.3f} | {m['picks']['f1']:.3f} | {m['picks']['best_f1']:.3f} |")
        b, c = r["baseline"], r["chance"]
        lines.append(f"| {tomo} | {route} | no model | - | {b['pointing']:.3f} | {b['pointing_any_instance']:.3f} | "
                     "- | - |")
        lines.append(f"| {tomo} | {route} | chance | {c['class_accuracy']:.3f} | {c['pointing']:.3f} | "
                     f"{c['pointing_any_instance']:.3f} | {c['picks_f1']:.3f} | - |")
    acc = ", ".join(f"{route} {test_accuracy(out, route):.3f}" for route in ROUTES if (out / f"{route}.pt").exists())
    return "\n".join(lines) + f"\n\nTest accuracy of the training split (boxes): {acc}\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="Output folder (created).")
    p.add_argument("--tomograms", type=int, default=6, help="Annotated tomograms simulated.")
    p.add_argument("--held-out", type=int, default=2, help="The last this many are held out and explained.")
    p.add_argument("--shape", default="48,120,120", help="Tomogram size z,y,x in voxels.")
    p.add_argument("--particles", "-n", type=int, default=40, help="Particles per tomogram.")
    p.add_argument("--shapes", default="shell,rod,ring,disc", help="Built-in shapes (the classes).")
    p.add_argument("--voxel-size", type=float, default=20.0, help="Angstrom, of tomograms and boxes.")
    p.add_argument("--box", type=int, default=24, help="Box edge (the model's input), voxels.")
    p.add_argument("--snr", type=float, default=1.0, help="Tomogram SNR; the simulated boxes' highest.")
    p.add_argument("--min-snr", type=float, default=0.25, help="Lowest SNR of the simulated boxes.")
    p.add_argument("--per-particle", type=int, default=4, help="Extracted boxes per particle.")
    p.add_argument("--max-shift", type=float, default=6.0, help="Shift of a box from its particle, voxels (half "
                   "explain's default stride).")
    p.add_argument("--background", default="0.25x", help="Extracted background boxes (count or ratio).")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--time-limit", type=float, default=None, help="Minutes of training per network (tomocam train "
                   "--time-limit).")
    p.add_argument("--fc-width", type=int, default=64)
    p.add_argument("--stride", type=int, default=6, help="Explain tile step, voxels (a quarter of the box).")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="Processes; CPU threads.")
    args = p.parse_args()
    if not 0 < args.held_out < args.tomograms:
        sys.exit("--held-out must be between 1 and --tomograms - 1")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    t0 = time.time()
    tomos = simulate_tomograms(args, out)
    held = tomos[-args.held_out:]
    make_datasets(args, out, tomos)
    train(args, out, [t.stem for t in held])
    rows = evaluate(args, out, held)
    print(summary_table(rows, out))
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
