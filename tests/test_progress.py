"""Progress bars: on stderr (stdout keeps only results), with the task's own fields, silent when disabled."""

from __future__ import annotations

from tomocam.progress import progress_bars


def _run(enabled: bool) -> None:
    with progress_bars("{task.fields[info]}", enabled=enabled) as bars:
        task = bars.add_task("epoch 1/2", total=4, info="loss 0.5")
        bars.advance(task, 4)


def test_bars_go_to_stderr_with_counts_and_fields(capsys):
    _run(enabled=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "epoch 1/2" in err and "4/4" in err and "loss 0.5" in err


def test_disabled_bars_draw_nothing(capsys):
    _run(enabled=False)
    assert capsys.readouterr() == ("", "")
