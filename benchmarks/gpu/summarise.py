"""Markdown tables from the files the GPU suite (``benchmarks/gpu/device_suite.sh``) leaves: the GPU tables of
docs/benchmarks.md and docs/gpu.md, each naming the card it was measured on.

Reads ``FOLDER/logs/`` (``env.json``, ``steps.txt``, ``<step>.monitor.json``, ``bench_cam.jsonl``,
``bench_explain.json``), the recipes' own tables (``FOLDER/table1/table1.md``, ``FOLDER/localise/*.md``; the
end of a step's log where a table is missing) and the demo's summary; whatever is missing is said, not guessed.
FOLDER is the suite's ``WORK`` folder, or where ``results.tar.gz`` was unpacked. Prints to standard output. Usage::

    python benchmarks/gpu/summarise.py FOLDER > summary.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut short by a step's time limit
            pass
    return rows


def fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits or abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine_line(env: dict | None) -> tuple[str, str]:
    """(card name, one line describing the machine)."""
    if not env:
        return "unknown card", "No env.json: the setup step did not run or failed."
    card = env.get("card", "cpu")
    memory = f", {env['card_memory_gib']} GiB" if env.get("card_memory_gib") else ""
    return card, (f"{card}{memory}; {env.get('cpu_count')} CPU cores; python {env.get('python')}, torch "
                  f"{env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}")


def steps_section(logs: Path, card: str) -> str:
    rows = []
    try:
        lines = (logs / "steps.txt").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        name, rc, budget, seconds = (line.split() + ["-"] * 4)[:4]
        mon = read_json(logs / f"{name}.monitor.json") or {}
        status = {"0": "ok", "124": "stopped at its budget", "skipped": "skipped"}.get(rc, f"failed (exit {rc})")
        rows.append([name, card, status, budget, seconds, fmt(mon.get("peak_host_rss_mib"), 0),
                     fmt(mon.get("peak_gpu_mib"), 0), fmt(mon.get("mean_gpu_util"), 0)])
    if not rows:
        return "No step ran."
    return table(["step", "card", "status", "budget s", "wall s", "peak host RSS MiB", "peak GPU MiB",
                  "mean GPU util %"], rows)


def cam_section(logs: Path) -> str:
    rows = read_jsonl(logs / "bench_cam.jsonl")
    if not rows:
        return "No bench_cam rows (the step did not run or ended before its first row)."
    body = [[r["model"], r.get("card", "-"), r["layout"], r["dtype"], str(r["batch"]),
             fmt(r["forward_tiles_per_s"], 0),
             fmt(r["tomocam_tiles_per_s"], 0), fmt(r["ratio"], 2), fmt(r["plain_vjp_ratio"], 2),
             fmt(r.get("loop_ratio")), fmt(r.get("speedup_vs_loop")), fmt(r.get("peak_gpu_mib"), 0)] for r in rows]
    return table(["model", "card", "layout", "precision", "batch", "forward tiles/s", "all-class Respond+Grad tiles/s",
                  "ratio", "plain batched VJP ratio", "per-class loop ratio", "speed-up vs loop", "peak GPU MiB"], body)


def log_tail(log: Path, card: str, lines: int = 30) -> str:
    """The last ``lines`` lines of a step's log, as a code block naming the card; '' when there is no log."""
    try:
        tail = "\n".join(log.read_text().splitlines()[-lines:])
    except OSError:
        return ""
    return f"The end of `{log.name}` ({card}):\n\n```\n{tail}\n```"


def explain_section(logs: Path, card: str) -> str:
    data = read_json(logs / "bench_explain.json")
    if data and isinstance(data.get("rows"), list) and data["rows"]:
        keys = list(data["rows"][0])
        return table(["card", *keys], [[card, *(fmt(r.get(k), 2) for k in keys)] for r in data["rows"]])
    return log_tail(logs / "explain.log", card) or "No explain benchmark output."


def included(paths: list[Path], log: Path, what: str, card: str) -> str:
    """A recipe's own Markdown tables, prefixed with the card they were made on; else the end of its log."""
    found = [p for p in paths if p.is_file()]
    if found:
        return "\n\n".join(f"Measured on {card} (`{p.name}`):\n\n" + p.read_text().strip() for p in found)
    return log_tail(log, card) or f"No {what} output."


def summarise(folder: Path) -> str:
    logs = folder / "logs"
    env = read_json(logs / "env.json")
    card, machine = machine_line(env)
    parts = [f"# GPU suite results: {card}", machine, "## Steps", steps_section(logs, card),
             "## All-class CAMs vs forward vs per-class loop (benchmarks/bench_cam.py)", cam_section(logs),
             "## tomocam explain on a whole tomogram (benchmarks/bench_explain.py)", explain_section(logs, card),
             "## Table 1 at the paper's scale (benchmarks/table1_recipe.py)",
             included([folder / "table1" / "table1.md"], logs / "table1.log", "Table 1", card),
             "## Localisation training stage (benchmarks/localisation_recipe.py)",
             included(sorted((folder / "localise").glob("*.md")), logs / "localise.log", "localisation", card),
             "## tomocam demo through the CLI's GPU workers",
             log_tail(logs / "demo.log", card, lines=12) or "No demo output."]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    print(summarise(args.folder), end="")


if __name__ == "__main__":
    main()
