"""Results printed to a pipe or a file (a SLURM log) keep every name and number whole: no cell cut to ``…``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_evaluate_localisation import _blob_store

TESTS = Path(__file__).parent

TABLE = """
from rich.table import Table
from tomocam.cli.console import results_console
table = Table(title="t")
for name in ("class", "precision", "recall", "F1 at the per-class default threshold"):
    table.add_column(name, no_wrap=True)
for i in range(4):
    table.add_row(f"a-very-long-class-name-{i}-" + "x" * 60, "0.123456789", "0.000123456", "0.987654321")
results_console().print(table)
"""


def _pipe(args: list[str], columns: str = "40") -> str:
    """Run ``args`` with stdout to a pipe (as under ``> log``) and a narrow $COLUMNS; returns stdout."""
    env = {**os.environ, "COLUMNS": columns, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_table_to_a_pipe_prints_every_cell_whole():
    out = _pipe([sys.executable, "-c", TABLE])
    assert "…" not in out
    for i in range(4):
        assert f"a-very-long-class-name-{i}-{'x' * 60}" in out
    assert out.count("0.123456789") == 4 and "F1 at the per-class default threshold" in out
    widths = {len(line) for line in out.splitlines()[1:] if line.strip()}
    assert len(widths) == 1  # one table, its rows as wide as its cells need, none wrapped


def test_localisation_table_to_a_pipe_is_whole_and_matches_the_json(tmp_path):
    store, truth, _, _ = _blob_store(tmp_path)
    csv = tmp_path / "truth.csv"
    truth.to_csv(csv, index=False)
    args = [sys.executable, "-m", "tomocam", "evaluate", "localisation", store.path, str(csv), "--cube", "11",
            "--radius", "3", "--sigma", "1", "--pick-radius", "4", "--pick-threshold", "0.5",
            "--particles-look", "bright"]
    out = _pipe(args)
    data = json.loads(_pipe([*args, "--json"]))
    assert "…" not in out
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in out.splitlines() if line.count("│") > 2}
    for method, name in (("respond", "Respond-CAM"), ("gradcam", "Grad-CAM")):
        r = data["methods"][method]
        assert rows[name][:3] == [f"{r['pointing']:.3f}", f"{r['pointing_any_instance']:.3f}",
                                  f"{r['class_accuracy']:.3f}"]
        assert rows[name][5] == f"{r['picks']['f1']:.3f}"
    assert rows["no model"][0] == f"{data['baseline']['pointing']:.3f}"
    assert rows["chance"][0] == f"{data['chance']['pointing']:.3f}"
