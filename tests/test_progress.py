"""Progress bars: on stderr (stdout keeps only results), with the task's own fields, silent when disabled."""

from __future__ import annotations

import re

from tomocam.progress import progress_bars, progress_line


def _run(enabled: bool) -> None:
    with progress_bars("{task.fields[info]}", enabled=enabled) as bars:
        task = bars.add_task("epoch 1/2", total=4, info="loss 0.5")
        bars.advance(task, 4)


def test_bars_go_to_stderr_with_counts_and_fields(capsys):
    _run(enabled=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "epoch 1/2" in err and "4/4" in err and "loss 0.5" in err


def test_disabled_bars_draw_nothing_import_no_rich_and_count_as_rich_does(capsys):
    import subprocess
    import sys

    _run(enabled=False)
    assert capsys.readouterr() == ("", "")
    script = ("import sys; from tomocam.progress import progress_bars\n"
              "with progress_bars(enabled=False) as bars:\n"
              "    t = bars.add_task('a', total=4); bars.advance(t, 3); bars.advance(t)\n"
              "    u = bars.add_task('b'); bars.update(u, completed=2, total=5)\n"
              "print([(x.description, x.completed, x.total) for x in bars.tasks], 'rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[('a', 4, 4), ('b', 2, 5)] False"


def test_without_a_terminal_each_running_task_prints_a_line_with_rate_and_eta(capsys, monkeypatch):
    """A batch job's log is no terminal: bars would show only at the end, so lines come every N seconds."""
    import time

    monkeypatch.setenv("TOMOCAM_PROGRESS_SECONDS", "0.05")
    with progress_bars(enabled=True) as bars:  # pytest's captured stderr is not a terminal
        task = bars.add_task("phase 1: CAMs of tiles", total=10)
        done = bars.add_task("phase 0", total=1)
        bars.advance(done, 1)
        for _ in range(4):
            bars.advance(task, 1)
            time.sleep(0.06)
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if line.startswith("phase 1: CAMs of tiles: ")]
    assert len(lines) >= 2
    assert re.fullmatch(r"phase 1: CAMs of tiles: \d/10 \(\d+%\), [\d.]+/s, ETA 0:00:\d\d", lines[-1]), lines
    assert not any(line.startswith("phase 0: ") for line in err)  # finished tasks print no more lines


def test_progress_line_before_any_rate_is_known():
    from rich.progress import Progress

    with Progress(disable=True) as bars:
        task = bars.add_task("simulating", total=None)
        assert progress_line(bars.tasks[task]) == "simulating: 0"


def test_a_bar_is_drawn_only_once_its_phase_started(capsys, monkeypatch):
    """A run that fails before phase 2 (or whose phase 1 was all resumed) draws no bar for the phase that never
    ran; a bar appears with its first progress or ``start_task``."""
    monkeypatch.setenv("TOMOCAM_PROGRESS_SECONDS", "0.02")
    try:
        with progress_bars(enabled=True) as bars:
            p1 = bars.add_task("phase 1: CAMs of tiles", total=10)
            bars.add_task("phase 2: heatmaps and labels", total=4)
            resumed = bars.add_task("phase 0: nothing left", total=0)
            bars.update(resumed, completed=0)
            bars.advance(p1, 0)  # no work done yet: still hidden
            import time

            time.sleep(0.1)
            assert capsys.readouterr().err == ""
            bars.advance(p1, 3)
            waiting = bars.add_task("finalize", total=1)
            bars.start_task(waiting)
            raise ValueError("NaN voxels in block (0, 0, 0)")
    except ValueError:
        pass
    err = capsys.readouterr().err
    assert "phase 1: CAMs of tiles" in err and "3/10" in err and "finalize" in err
    assert "phase 2" not in err and "phase 0" not in err
