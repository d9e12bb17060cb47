"""Run one command and record its wall time, peak host memory and peak GPU memory into a JSON file.

Host memory is the peak of the summed resident set of the command and all its descendants (Dask workers
included), polled with psutil; GPU memory is the card's used memory polled through NVML (``nvidia-ml-py``), or
``nvidia-smi`` where NVML is missing, minus what was in use when the command started. The command runs in its own
process session: when the monitor is stopped (``timeout`` sends SIGTERM) it ends that session and every descendant
it has seen (also those that started sessions of their own), so a step that overruns its budget leaves no worker
behind holding the GPU or the cores, and the JSON still says how far it got. Usage::

    python3 benchmarks/gpu/monitor.py --json step.json [--interval 0.25] -- COMMAND [ARGS...]

Exits with the command's exit status (124 when stopped by a signal).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import psutil


def gpu_memory_reader() -> tuple[Callable[[], tuple[float, float]] | None, str]:
    """A function returning ``(used MiB summed over the visible GPUs, mean utilisation %)``, and its source."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

        def nvml() -> tuple[float, float]:
            used = sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for h in handles) / 2**20
            util = sum(pynvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles) / max(1, len(handles))
            return used, util

        if handles:
            return nvml, "nvml"
    except Exception:  # no NVML library or no GPU: try the command-line tool
        pass
    if shutil.which("nvidia-smi"):

        def smi() -> tuple[float, float]:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5).stdout
            rows = [[float(v) for v in line.split(",")] for line in out.strip().splitlines() if line.strip()]
            return sum(r[0] for r in rows), sum(r[1] for r in rows) / max(1, len(rows))

        try:
            smi()
            return smi, "nvidia-smi"
        except Exception:
            pass
    return None, "none"


def tree_rss_mib(proc: psutil.Process, seen: dict[int, psutil.Process]) -> float:
    """Resident MiB of ``proc`` and every descendant (processes that vanish meanwhile count as zero).

    Every descendant met is added to ``seen``, so that it can be ended later even after its parent is gone.
    """
    total = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for p in tree:
        seen.setdefault(p.pid, p)
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def end_all(processes: list[psutil.Process], grace: float = 10.0) -> None:
    """SIGTERM to every process still running, SIGKILL to those still there after ``grace`` seconds."""
    alive = []
    for p in processes:
        try:
            if p.is_running():  # also checks the process is the same (creation time), not a reused pid
                p.terminate()
                alive.append(p)
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=grace)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="where to write the record")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between polls")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    read_gpu, gpu_source = gpu_memory_reader()
    gpu_base = read_gpu()[0] if read_gpu else None
    record: dict = {"command": command, "gpu_source": gpu_source, "gpu_baseline_mib": gpu_base,
                    "peak_host_rss_mib": 0.0, "peak_gpu_used_mib": gpu_base, "gpu_util_samples": []}
    t0 = time.perf_counter()
    child = subprocess.Popen(command, start_new_session=True)
    proc = psutil.Process(child.pid)
    seen: dict[int, psutil.Process] = {child.pid: proc}
    stopped = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopped.set()
        record["stopped_by_signal"] = signal.Signals(signum).name

    def with_group(sig: int) -> None:
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while child.poll() is None:
        record["peak_host_rss_mib"] = max(record["peak_host_rss_mib"], tree_rss_mib(proc, seen))
        if read_gpu:
            try:
                used, util = read_gpu()
                record["peak_gpu_used_mib"] = max(record["peak_gpu_used_mib"], used)
                record["gpu_util_samples"].append(util)
            except Exception:
                pass
        if stopped.wait(args.interval):
            break
    if stopped.is_set():
        tree_rss_mib(proc, seen)  # the descendants alive now, whatever session they made for themselves
        with_group(signal.SIGTERM)
        end_all(list(seen.values()))
    rc = child.wait()
    with_group(signal.SIGKILL)  # anything the command left running in its session (e.g. a Dask nanny)
    end_all([p for pid, p in seen.items() if pid != child.pid], grace=5.0)  # and outside it
    samples = record.pop("gpu_util_samples")
    record.update(
        returncode=124 if stopped.is_set() else rc,
        wall_s=round(time.perf_counter() - t0, 2),
        peak_gpu_mib=(record["peak_gpu_used_mib"] - gpu_base) if read_gpu else None,
        mean_gpu_util=(sum(samples) / len(samples)) if samples else None,
    )
    with open(args.json, "w") as f:
        json.dump(record, f, indent=1)
    print(f"[monitor] rc={record['returncode']} wall={record['wall_s']}s peak host RSS "
          f"{record['peak_host_rss_mib']:.0f} MiB peak GPU {record['peak_gpu_mib']} MiB ({gpu_source})",
          file=sys.stderr, flush=True)
    return record["returncode"]


if __name__ == "__main__":
    sys.exit(main())
