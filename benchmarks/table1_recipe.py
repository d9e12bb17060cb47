r"""The paper's Table 1 in the authors' setting, end to end, within a fixed time budget: simulate, train, evaluate.

Simulates the two datasets of the paper (40^3 boxes of the complexes in ``--structures``, +-60 degree wedge, SNR
+inf and 0.1, shift up to ``--max-shift`` voxels), trains CNN-1 and CNN-2 on each (no dropout, Adam, best
validation epoch kept), evaluates Table 1 on each model's test split (``tomocam evaluate table1 --json``), and,
as an extra, the Grad-CAM tau against the max shift (CNN-2, SNR +inf, ``--shift-n`` boxes per class, a fixed
number of epochs, under a time limit of its own). The results go into ``--out``: one log per step, each
evaluation's JSON, ``commands.sh`` (every command as run), ``table1.json`` and ``table1.md``; the datasets and
checkpoints into ``--work``.

The steps run in nine lanes at once: the CPU lane simulates the datasets one after the other with every core but
two; four model lanes (CNN-1 and CNN-2 at each SNR) and four tau-vs-shift lanes train and evaluate on the device,
sharing it, as soon as their dataset exists. Each step has its own budget: a model trains until ``--budget`` less
``--reserve`` seconds (loading, one epoch past the limit, evaluation), or ``--cnn1-minutes`` /
``--cnn2-minutes`` if shorter (``tomocam train --time-limit``: it stops after the epoch in which the limit runs
out); every step is killed past its hard limit so a slow step never eats the others; a step that fails or is
killed is reported in the table, the others go on. No simulation or training
starts after ``--budget`` seconds (a trained model is still evaluated), and the tau-vs-shift extras are cut at
it. The tables are rewritten after every step, so a run killed from outside keeps what it finished.

Measured here (shared 2-core CPU): simulation 46 boxes/s on one core at load 1.5-2 (55 s for the paper's 2 x
23000 boxes on 14 workers if the GPU machine's cores are as fast); CNN-2 trains at about 0.03 s/box and CNN-1 at
0.31 s/box on one idle CPU core. Usage (a GPU machine with 16 cores; the paper's 1000 boxes per class)::

    python benchmarks/table1_recipe.py --structures .devdata/structures-10A --out out/table1 \
        --work /tmp/table1-work --device cuda

and at toy scale on a CPU (proves the recipe runs; the figures mean nothing)::

    python benchmarks/table1_recipe.py --structures ../shared/data/structures-10A --out /tmp/t1 --device cpu \
        -n 8 --shift-n 4 --cnn1-minutes 0.05 --cnn2-minutes 0.05 --shift-epochs 1 --workers 1 --budget 1200 \
        --limit-factor 10
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch  # imported before the lanes start: reading checkpoints must not stall them later

# The 23 complexes of docs/table1.md: the 26 maps of structures-10A minus 4v94, 5mrc and 8tux, whose particle
# radius (17-19 voxels) does not fit a 40^3 box with room to spare.
COMPLEXES = ("1bxn 1f4a 1qvr 1s3x 1u6g 2cg9 2uv8 3cf3 3d2f 3gl1 3h84 3ipm 3j9i 3qm1 4cr2 4v4r 4v4r_30S 4v4r_50S "
             "4v7r 6pxm 6qzp 6utj 7n4y").split()
SHIFTS = (0, 2, 4, 8)


@dataclass
class Step:
    """One command of the recipe: it waits for ``needs`` (names of earlier steps) and runs at most ``limit_s``."""

    name: str
    argv: list[str]
    limit_s: float
    needs: tuple[str, ...] = ()
    optional: bool = False
    stdout: Path | None = None  # where the command's standard output goes (else the step's log)
    reserve_s: float | None = None  # training: --time-limit is the time left to the budget less this
    minutes_cap: float | None = None  # training: at most this --time-limit
    status: str = "pending"
    seconds: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


class Recipe:
    """Runs lanes of steps in threads, logs every command and its output, and never lets one step overrun."""

    def __init__(self, out: Path, budget_s: float, python: str, limit_factor: float, on_step=None):
        self.out, self.budget_s, self.python, self.limit_factor = out, budget_s, python, limit_factor
        self.on_step = on_step  # called after every step, under the lock (writes the tables so far)
        self.t0 = time.monotonic()
        self.steps: dict[str, Step] = {}
        self.training: dict[str, dict] = {}  # model name -> its checkpoint's training record
        self.lock = threading.Lock()
        (out / "logs").mkdir(parents=True, exist_ok=True)
        self.commands = open(out / "commands.sh", "w")
        self.commands.write("#!/usr/bin/env bash\n# the commands of benchmarks/table1_recipe.py, in start order\n")

    def add(self, step: Step) -> Step:
        self.steps[step.name] = step
        return step

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def run_lane(self, names: list[str]) -> None:
        for name in names:
            step = self.steps[name]
            try:
                self._run(step)
            finally:
                step.done.set()
                if self.on_step is not None:
                    with self.lock:
                        self.on_step()

    def _run(self, step: Step) -> None:
        for need in step.needs:
            self.steps[need].done.wait()
            if self.steps[need].status != "ok":
                step.status = f"skipped ({need} did not finish)"
                return
        left = self.budget_s - self.elapsed()
        evaluation = step.argv[0] == "evaluate"  # a trained model is always evaluated (seconds on a GPU)
        if (left <= 0 and not (evaluation and not step.optional)) or (step.optional and left < 20):
            step.status = f"skipped (budget: {max(left, 0):.0f} s left)"
            return
        step_argv, limit_s = list(step.argv), step.limit_s
        if step.reserve_s is not None or step.minutes_cap is not None:
            # at least 6 s of training, however late it starts
            minutes = max(0.1, (left - step.reserve_s) / 60) if step.reserve_s is not None else math.inf
            minutes = min(minutes, step.minutes_cap or math.inf)
            step_argv += ["--time-limit", f"{minutes:.3f}"]
            limit_s += 2 * 60 * minutes  # loading, the time limit, one epoch past it, the test predictions
        limit = self.limit_factor * limit_s
        limit = min(limit, left) if step.optional else limit  # extras end with the budget
        argv = [self.python, "-m", "tomocam", *step_argv]
        with self.lock:
            # paths relative to the working folder: commands.sh is quoted in docs, where a machine's paths mean nothing
            shown = [os.path.relpath(a) if os.path.isabs(a) else a for a in step_argv]
            self.commands.write(shlex.join(["tomocam", *shown]) + f"   # {step.name}, started at "
                                f"{self.elapsed():.0f} s\n")
            self.commands.flush()
        start = time.monotonic()
        with open(self.out / "logs" / f"{step.name}.log", "w") as log, \
                open(step.stdout or os.devnull, "w") as stdout:
            # its own process group, so that a kill takes the simulation's worker processes too
            proc = subprocess.Popen(argv, stdout=stdout if step.stdout else log, stderr=log, start_new_session=True)
            try:
                rc = proc.wait(timeout=limit)
                step.status = "ok" if rc == 0 else f"failed (exit {rc})"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                step.status = f"killed after {limit:.0f} s"
        step.seconds = time.monotonic() - start
        print(f"[{self.elapsed():6.1f} s] {step.name}: {step.status} in {step.seconds:.1f} s", flush=True)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--structures", type=Path, required=True, help="folder with the complexes' MRC maps")
    p.add_argument("--out", type=Path, required=True, help="results folder (created; must not exist)")
    p.add_argument("--work", type=Path, default=None,
                   help="datasets and checkpoints (default: OUT/work; 12 GB at 1000 boxes per class)")
    p.add_argument("--device", default="cuda", help="torch device for training and evaluation")
    p.add_argument("-n", "--n-per-class", type=int, default=1000, help="boxes per class (paper: 1000)")
    p.add_argument("--max-shift", type=float, default=8.0, help="max shift, voxels (authors: 0.2 x 40 = 8)")
    p.add_argument("--normalisation", default="raw", choices=("raw", "zscore"), help="input normalisation")
    p.add_argument("--cnn1-minutes", type=float, default=None,
                   help="training time limit of each CNN-1 (default: until --budget less --reserve)")
    p.add_argument("--cnn2-minutes", type=float, default=None,
                   help="training time limit of each CNN-2 (default: until --budget less --reserve)")
    p.add_argument("--reserve", type=float, default=45.0,
                   help="seconds a model needs besides training: loading, one epoch past the limit, evaluation")
    p.add_argument("--max-epochs", type=int, default=100, help="epoch cap under the time limits")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--parts", nargs="+", choices=("table1", "shift"), default=["table1", "shift"],
                   help="what to run: the four Table 1 models, the tau-vs-shift CNN-2s, or both")
    p.add_argument("--shift-n", type=int, default=200, help="boxes per class of the tau-vs-shift datasets (0: none)")
    p.add_argument("--shift-epochs", type=int, default=15, help="epochs of each tau-vs-shift CNN-2")
    p.add_argument("--shift-minutes", type=float, default=0.4, help="time limit of each tau-vs-shift CNN-2")
    p.add_argument("--workers", type=int, default=None, help="simulation processes (default: cores - 2)")
    p.add_argument("--budget", type=float, default=250.0, help="seconds after which no step starts")
    p.add_argument("--limit-factor", type=float, default=1.0,
                   help="multiplies every step's hard limit (a slow or shared machine)")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def main() -> None:
    args = _parse()
    if args.out.exists():
        sys.exit(f"output folder {args.out} exists already: choose another")
    maps = [args.structures / f"{name}.mrc" for name in COMPLEXES]
    missing = [str(m) for m in maps if not m.is_file()]
    if missing:
        sys.exit(f"missing structures: {', '.join(missing)}")
    args.out.mkdir(parents=True)
    out = args.out.resolve()
    work = (args.work or args.out / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    recipe = Recipe(out, args.budget, sys.executable, args.limit_factor,
                    on_step=lambda: _report(recipe, args, out, work, quiet=True))
    workers = args.workers or max(1, (os.cpu_count() or 2) - 2)
    structures = [a for m in maps for a in ("-s", str(m.resolve()))]

    def simulate(name: str, n: int, snr: str, shift: float, seed: int) -> Step:
        argv = ["simulate", "subtomograms", str(work / f"{name}.zarr"), "-n", str(n), *structures, "--snr", snr,
                "--max-shift", str(shift), "--seed", str(seed), "-j", str(workers)]
        # hard limit: 20 boxes/s per worker would be 3x slower than measured
        return recipe.add(Step(f"simulate-{name}", argv, 60 + n * len(maps) / (20 * workers),
                               optional=name.startswith("shift")))

    def train(arch: str, data: str, minutes: float | None, epochs: int, optional: bool = False) -> list[str]:
        model = f"{arch}-{data}"
        argv = ["train", str(work / f"{data}.zarr"), "-o", str(work / f"{model}.pt"), "-a", arch,
                "--epochs", str(epochs), "--batch-size", str(args.batch_size), "--lr", "1e-3", "--seed", "1",
                "--normalisation", args.normalisation, "--device", args.device]
        recipe.add(Step(f"train-{model}", argv, 120, needs=(f"simulate-{data}",), optional=optional,
                        reserve_s=None if optional else args.reserve, minutes_cap=minutes))
        ev = ["evaluate", "table1", str(work / f"{model}.pt"), str(work / f"{data}.zarr"), "--json",
              "--device", args.device, "--batch-size", "64"]
        recipe.add(Step(f"evaluate-{model}", ev, 240, needs=(f"train-{model}",), optional=optional,
                        stdout=out / f"{model}.json"))
        return [f"train-{model}", f"evaluate-{model}"]

    sim_lane: list[str] = []
    model_lanes: list[list[str]] = []
    if "table1" in args.parts:
        sim_lane += [simulate("snr-inf", args.n_per_class, "inf", args.max_shift, args.seed).name,
                     simulate("snr-0.1", args.n_per_class, "0.1", args.max_shift, args.seed + 1).name]
        # one lane per model: the four share the device, each training until the budget less its reserve
        model_lanes = [train(arch, data, minutes, args.max_epochs)
                       for data in ("snr-inf", "snr-0.1")
                       for arch, minutes in (("cnn1", args.cnn1_minutes), ("cnn2", args.cnn2_minutes))]
    shift_lanes: list[list[str]] = []  # one lane per shift, side by side (one after the other, two of four fitted)
    if "shift" in args.parts and args.shift_n > 0:
        for shift in SHIFTS:
            sim_lane.append(simulate(f"shift-{shift}", args.shift_n, "inf", shift, args.seed + 10).name)
            shift_lanes.append(train("cnn2", f"shift-{shift}", args.shift_minutes, args.shift_epochs, optional=True))
    lanes = [threading.Thread(target=recipe.run_lane, args=(lane,))
             for lane in (sim_lane, *model_lanes, *shift_lanes)]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    recipe.commands.close()
    _report(recipe, args, out, work)


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _cell(res: dict | None, method: str, key: str) -> str:
    if res is None:
        return "-"
    m = res[method]
    return f"{m[key + '_mean']:.3f} ± {m[key + '_std']:.3f}"


def _table1_rows(lines: list[str], results: dict[str, dict]) -> None:
    """Append Table 1's four columns (CNN-1/CNN-2 at SNR +inf and 0.1) to ``lines``."""
    lines += ["", "| Model | CNN-1 | CNN-2 | CNN-1 | CNN-2 |", "|---|---|---|---|---|",
              "| SNR | +inf | +inf | 0.1 | 0.1 |"]
    cols = [results.get(m) for m in ("cnn1-snr-inf", "cnn2-snr-inf", "cnn1-snr-0.1", "cnn2-snr-0.1")]

    def row(label: str, fn) -> None:
        lines.append(f"| {label} | " + " | ".join("-" if r is None else fn(r) for r in cols) + " |")

    row("epochs run (best)", lambda r: f"{r['training']['epochs_run']} ({r['training']['best_epoch']})")
    row("train seconds", lambda r: f"{r['training']['train_seconds']:.0f}")
    row("test boxes", lambda r: str(r["n"]))
    row("test accuracy", lambda r: f"{r['accuracy']:.3f}")
    row("mean \\|score\\|", lambda r: f"{r['score_abs_mean']:.2f}")
    for method, label in (("gradcam", "Grad"), ("respond", "Respond")):
        row(f"L1, {label}", lambda r, m=method: _cell(r, m, "l1"))
    for method, label in (("gradcam", "Grad"), ("respond", "Respond")):
        row(f"KT, {label}", lambda r, m=method: _cell(r, m, "tau"))
    if any(c is not None and "identity" in c for c in cols):
        row("mean \\|Z·Σ Cov\\| (Grad sum = Respond sum − Z·Σ Cov)",
            lambda r: f"{r['identity']['covariance_abs_mean']:.3f}")
        row("max \\|G + Z·Σ Cov − R\\| / mean \\|score\\|", lambda r: f"{r['identity']['residual_max_rel']:.1e}")


def _report(recipe: Recipe, args: argparse.Namespace, out: Path, work: Path, quiet: bool = False) -> None:
    """Collect every evaluation's JSON into table1.json and the tables into table1.md (after every step, so that
    a run killed from outside keeps what it finished)."""
    results: dict[str, dict] = {}
    for name, step in recipe.steps.items():
        if name.startswith("evaluate-") and step.status == "ok":
            res = _load(out / f"{name.removeprefix('evaluate-')}.json")
            if res is not None:
                model = name.removeprefix("evaluate-")
                if model not in recipe.training:
                    ckpt = torch.load(work / f"{model}.pt", map_location="cpu", weights_only=True)
                    prov = ckpt["meta"]["provenance"]
                    recipe.training[model] = {k: prov.get(k) for k in (
                        "epochs_run", "best_epoch", "train_seconds", "test_accuracy", "val_accuracy", "split",
                        "device", "history")}
                res["training"] = recipe.training[model]
                results[model] = res
    steps = {n: {"status": s.status, "seconds": round(s.seconds, 1)} for n, s in recipe.steps.items()}
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "total_seconds": round(recipe.elapsed(), 1),
               "steps": steps, "results": results}
    (out / "table1.json").write_text(json.dumps(summary, indent=2))

    title = (f"# Table 1, authors' setting: shift <= {args.max_shift:g} voxels, no dropout, "
             f"{args.normalisation} input, {args.n_per_class} boxes per class" if "table1" in args.parts
             else f"# Table 1's tau against the max shift, {args.normalisation} input")
    lines = [title, "", f"device {args.device}; total {recipe.elapsed():.0f} s"]
    if "table1" in args.parts:
        _table1_rows(lines, results)
    if "shift" in args.parts and args.shift_n > 0:
        lines += ["", f"## Grad-CAM tau against max shift (CNN-2, SNR +inf, {args.shift_n} boxes per class, "
                  f"{args.shift_epochs} epochs)", "",
                  "| max shift | test accuracy | KT, Grad | KT, Respond | L1, Grad | L1, Respond |",
                  "|---|---|---|---|---|---|"]
        for shift in SHIFTS:
            r = results.get(f"cnn2-shift-{shift}")
            acc = "-" if r is None else f"{r['accuracy']:.3f}"
            lines.append(f"| {shift} | {acc} | {_cell(r, 'gradcam', 'tau')} | {_cell(r, 'respond', 'tau')} | "
                         f"{_cell(r, 'gradcam', 'l1')} | {_cell(r, 'respond', 'l1')} |")
    lines += ["", "## Steps", "", "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {n} | {s['status']} | {s['seconds']} |" for n, s in steps.items()]
    (out / "table1.md").write_text("\n".join(lines) + "\n")
    if not quiet:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
