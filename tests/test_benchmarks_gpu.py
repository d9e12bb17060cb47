"""The GPU suite's helpers (benchmarks/gpu/), on CPU: the monitor's memory peaks, exit status and clean-up of a
stopped step, and the summariser's tables."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

GPU = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"


def test_monitor_records_the_peak_of_the_whole_process_tree_and_passes_the_exit_status(tmp_path):
    # a child holding 300 MiB starts a grandchild holding 200 MiB: both are resident together for a second
    code = ("import subprocess, sys, numpy as np; a = np.ones(300 * 2**17); "
            "subprocess.run([sys.executable, '-c', 'import time, numpy as np; b = np.ones(200 * 2**17); "
            "time.sleep(1.5)']); sys.exit(3)")
    out = tmp_path / "m.json"
    rc = subprocess.run([sys.executable, GPU / "monitor.py", "--json", out, "--interval", "0.1", "--",
                         sys.executable, "-c", code]).returncode
    record = json.loads(out.read_text())
    assert rc == 3 and record["returncode"] == 3
    assert 500 <= record["peak_host_rss_mib"] < 1500
    assert record["wall_s"] >= 1.5


def test_a_stopped_monitor_ends_every_process_of_its_step(tmp_path):
    pids = tmp_path / "pids"
    # the grandchild starts a session of its own, as a recipe's time-limited step may
    code = (f"import os, subprocess, time; p = subprocess.Popen(['sleep', '60'], start_new_session=True); "
            f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{p.pid}}'); time.sleep(60)")
    out = tmp_path / "m.json"
    monitor = subprocess.Popen([sys.executable, GPU / "monitor.py", "--json", out, "--", sys.executable, "-c", code])
    deadline = time.time() + 60
    while not pids.exists() or not pids.read_text():
        assert time.time() < deadline and monitor.poll() is None
        time.sleep(0.1)
    monitor.send_signal(signal.SIGTERM)  # what `timeout` sends at a step's budget
    assert monitor.wait(timeout=30) == 124
    assert json.loads(out.read_text())["returncode"] == 124
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(psutil.NoSuchProcess):
            p = psutil.Process(pid)
            if p.status() == psutil.STATUS_ZOMBIE:  # ended, not yet reaped by its (ended) parent
                raise psutil.NoSuchProcess(pid)


def test_summary_names_the_card_on_every_table_and_keeps_the_figures(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "env.json").write_text(json.dumps({"card": "NVIDIA H200", "card_memory_gib": 139.8, "cpu_count": 16,
                                               "python": "3.12.3", "torch": "2.11.0", "cuda": "13.0", "cudnn": 91000}))
    (logs / "steps.txt").write_text("setup 0 40 12\ncam 124 75 75\n")
    (logs / "cam.monitor.json").write_text(json.dumps({"peak_host_rss_mib": 2048.0, "peak_gpu_mib": 9000.0,
                                                       "mean_gpu_util": 87.0}))
    row = {"model": "cnn2", "card": "NVIDIA H200", "layout": "channels_last", "dtype": "bf16", "batch": 256,
           "forward_tiles_per_s": 52000.0, "tomocam_tiles_per_s": 41000.0, "ratio": 1.268, "plain_vjp_ratio": 2.5,
           "loop_ratio": 70.0, "speedup_vs_loop": 55.2, "peak_gpu_mib": 3000.0}
    (logs / "bench_cam.jsonl").write_text(json.dumps(row) + "\n" + '{"model": "cnn1", "cut sh')  # a cut last line
    (tmp_path / "table1").mkdir()
    (tmp_path / "table1" / "table1.md").write_text("| model | accuracy |\n|---|---|\n| CNN-2 | 0.97 |\n")
    text = subprocess.run([sys.executable, GPU / "summarise.py", tmp_path], capture_output=True, text=True,
                          check=True).stdout
    assert text.startswith("# GPU suite results: NVIDIA H200")
    assert "| setup | NVIDIA H200 | ok | 40 | 12 |" in text
    assert "| cam | NVIDIA H200 | stopped at its budget | 75 | 75 | 2048 | 9000 | 87 |" in text
    assert ("| cnn2 | NVIDIA H200 | channels_last | bf16 | 256 | 52000 | 41000 | 1.27 | 2.50 | 70.0 | 55.2 | 3000 |"
            in text)
    assert "Measured on NVIDIA H200 (`table1.md`)" in text and "| CNN-2 | 0.97 |" in text
    assert "No explain benchmark output." in text and "No localisation output." in text


def _tiles_store(path: Path, logits, respond) -> Path:
    import numpy as np
    import zarr

    tiles = zarr.open_group(path, mode="w").create_group("tiles")
    tiles.create_array("logits", data=np.asarray(logits, dtype=np.float32))
    tiles.create_array("respond", data=np.asarray(respond, dtype=np.float32))
    return path


def test_compare_tiles_reports_relative_differences_and_top_class_agreement(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    logits, respond = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5, 2, 2, 2))
    cpu = _tiles_store(tmp_path / "cpu.zarr", logits, respond)
    close = respond.copy()
    close.flat[7] += 1e-5 * np.abs(respond).max()
    gpu = _tiles_store(tmp_path / "gpu.zarr", logits, close)
    swapped = logits.copy()
    swapped[0, 0, 0, swapped[0, 0, 0].argmax()] -= 10  # one tile of 24 gets another top class
    far = _tiles_store(tmp_path / "far.zarr", swapped, respond)

    def run(a: Path, b: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, GPU / "compare_tiles.py", a, b], capture_output=True, text=True)

    ok = run(gpu, cpu)
    assert ok.returncode == 0 and "| tiles/respond | 1.00e-05 |" in ok.stdout and "agrees on 100.0%" in ok.stdout
    bad = run(far, cpu)
    assert bad.returncode == 1 and "agrees on 95.8% of tiles" in bad.stdout
