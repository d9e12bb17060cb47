"""The localisation recipe's bookkeeping (benchmarks/localisation_recipe.py), on CPU: evaluations collected as they
finish, so a run cut short keeps the summary of what it measured, and a failed evaluation stops the recipe."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "benchmarks" / "localisation_recipe.py"


def _recipe():
    spec = importlib.util.spec_from_file_location("localisation_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(pointing: float) -> dict:
    """A `tomocam evaluate localisation --json` result with the keys the summary reads."""
    method = {"pointing": pointing, "pointing_any_instance": pointing, "class_accuracy": 0.5,
              "picks": {"f1": 0.25, "best_f1": 0.5, "best_threshold": 1.0}}
    return {"methods": {"respond": method, "gradcam": method},
            "baseline": {"pointing": 0.625, "pointing_any_instance": 0.725},
            "chance": {"pointing": 0.015, "pointing_any_instance": 0.018, "class_accuracy": 1 / 6, "picks_f1": 0.005}}


def _evaluation(tmp_path: Path, name: str, pointing: float, *, wait_for: Path | None = None, code: int = 0):
    """A stand-in for a background `tomocam evaluate localisation`: writes its JSON (once ``wait_for`` exists)."""
    result = tmp_path / f"{name}.json"
    # waits at most 20 s: a collect that blocked on it would then see it finished, and fail the test, not hang
    wait = (f"t = time.time()\nwhile not os.path.exists({str(wait_for)!r}) and time.time() - t < 20: "
            "time.sleep(0.05)\n") if wait_for else ""
    script = (f"import json, os, sys, time\n{wait}"
              f"open({str(result)!r}, 'w').write(json.dumps({_result(pointing)!r}))\n"
              f"sys.exit({code})\n")
    return subprocess.Popen([sys.executable, "-c", script]), result


def test_finished_evaluations_reach_the_summary_before_the_others_end(tmp_path):
    recipe = _recipe()
    go = tmp_path / "go"
    first = _evaluation(tmp_path, "a", 0.8)
    second = _evaluation(tmp_path, "b", 0.4, wait_for=go)
    first[0].wait()
    pending = [(("cnn2", "features.pool2", "1", 12.0), first), (("cnn1", "features.pool2", "1", 30.0), second)]
    rows: list = []
    summary = tmp_path / "summary.md"
    recipe.collect(pending, rows, summary, wait=False)
    assert len(rows) == 1 and len(pending) == 1  # the running one stays pending
    assert "| cnn2 | features.pool2 | 1 | respond | 0.800 | 0.800 | 0.500 |" in summary.read_text()
    assert "cnn1" not in summary.read_text()
    go.touch()
    recipe.collect(pending, rows, summary, wait=True)
    assert not pending and "| cnn1 | features.pool2 | 1 | respond | 0.400 |" in summary.read_text()


def test_a_failed_evaluation_stops_the_recipe(tmp_path):
    recipe = _recipe()
    failed = _evaluation(tmp_path, "a", 0.8, code=1)
    with pytest.raises(SystemExit, match="evaluation failed"):
        recipe.collect([(("cnn2", "features.pool2", "1", 12.0), failed)], [], tmp_path / "summary.md", wait=True)
