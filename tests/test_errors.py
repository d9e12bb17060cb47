"""Machine faults recognised by what they carry: :func:`tomocam.errors.os_fault` on synthetic exceptions of each kind
(an OSError, zarrs' RuntimeError, a Python OSError's text inside another type, causes, contexts, exception groups,
an exception re-raised from a Dask worker), and the CLI's mapping of them to one line and exit code 3."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tomocam.cli import main as cli_main
from tomocam.errors import InputError, OutputError, os_fault, warning_line

FAULTS = [errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOENT]


@pytest.mark.parametrize("number", FAULTS, ids=errno.errorcode.get)
def test_an_os_error_of_each_kind_keeps_its_errno_and_file(number):
    fault = os_fault(OSError(number, os.strerror(number), "/data/t.zarr/heatmaps/c/0/0/0"))
    assert isinstance(fault, OutputError) and isinstance(fault, OSError) and fault.exit_code == 3
    assert fault.errno == number
    assert os.strerror(number) in str(fault) and "/data/t.zarr/heatmaps/c/0/0/0" in str(fault)


@pytest.mark.parametrize("number", FAULTS, ids=errno.errorcode.get)
@pytest.mark.parametrize(
    "text",
    [
        "{reason} (os error {n})",  # zarrs (Rust's io::Error shown)
        "failed to store chunk: Os {{ code: {n}, kind: Other, message: \"{reason}\" }}",  # Rust's debug form
        "write failed: [Errno {n}] {reason}: '/x/c/0'",  # a Python OSError's text inside another type
    ],
    ids=["zarrs", "rust-debug", "python-text"],
)
def test_an_errno_carried_in_another_exceptions_text_is_found(number, text):
    err = RuntimeError(text.format(n=number, reason=os.strerror(number)))
    fault = os_fault(err)
    assert fault is not None and fault.errno == number and os.strerror(number) in str(fault)


def test_a_cause_or_context_deep_in_the_chain_is_found():
    try:
        try:
            try:
                raise RuntimeError("No space left on device (os error 28)")
            except RuntimeError:
                raise ValueError("while writing tiles/label_bounds")  # context  # noqa: B904
        except ValueError as err:
            raise KeyError("block (0, 1, 0)") from err  # cause
    except KeyError as err:
        fault = os_fault(err)
    assert fault is not None and fault.errno == errno.ENOSPC


def test_an_exception_group_member_is_found():
    group = Exception("chunk writes")  # an ExceptionGroup as Python 3.11 makes it (also on Python 3.10)
    group.exceptions = (ValueError("fine"), OSError(errno.EIO, "Input/output error"))  # type: ignore[attr-defined]
    fault = os_fault(group)
    assert fault is not None and fault.errno == errno.EIO


def test_a_cyclic_chain_ends():
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert os_fault(a) is None


@pytest.mark.parametrize(
    "err",
    [RuntimeError("the size of a decoded chunk is 0, expected 16384"), ValueError("os error"), KeyError(28),
     InputError("NaN voxels")],
)
def test_exceptions_without_an_errno_are_not_faults(err):
    assert os_fault(err) is None


def test_an_os_error_without_errno_is_still_an_output_error():
    fault = os_fault(OSError("store folder vanished"))
    assert isinstance(fault, OutputError) and str(fault) == "store folder vanished"


def test_an_error_re_raised_from_a_dask_worker_is_found(client):
    def write_chunk() -> None:
        raise RuntimeError("No space left on device (os error 28)")

    with pytest.raises(RuntimeError) as info:
        client.submit(write_chunk, pure=False).result()
    fault = os_fault(info.value)
    assert fault is not None and fault.errno == errno.ENOSPC


def _main_exit(monkeypatch, capsys, raised: BaseException) -> tuple[int, str]:
    def app(**_) -> None:
        raise raised

    monkeypatch.setattr(cli_main, "app", app)
    monkeypatch.setattr(cli_main, "_DEBUG", False)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main()
    return int(exit_info.value.code), capsys.readouterr().err


@pytest.mark.parametrize(
    "raised",
    [RuntimeError("No space left on device (os error 28)"), OSError(errno.EDQUOT, "Disk quota exceeded", "/q/f"),
     OSError(errno.EROFS, "Read-only file system"), OSError(errno.EIO, "Input/output error")],
    ids=["zarrs-enospc", "edquot", "erofs", "eio"],
)
def test_the_cli_maps_every_fault_to_one_line_and_exit_3(monkeypatch, capsys, raised):
    code, err = _main_exit(monkeypatch, capsys, raised)
    lines = err.strip().splitlines()
    assert code == 3 and len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in err
    assert os.strerror(os_fault(raised).errno) in lines[0]


def test_the_cli_lets_other_errors_through(monkeypatch, capsys):
    with pytest.raises(ZeroDivisionError):
        _main_exit(monkeypatch, capsys, ZeroDivisionError("a bug shows its traceback"))


def test_warnings_are_one_line_without_source():
    """The real entry point in a fresh process (pytest records warnings in its own): a library warning raised
    inside a command prints as one line, without the source line Python would quote."""
    code = (
        "import warnings, typer; from tomocam.cli import main as m\n"
        "def app(**_):\n    warnings.warn('chunk shape\\nis unusual', UserWarning); return 0\n"
        "m.app = app; m.main()"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stderr == "Warning: chunk shape is unusual (UserWarning)\n"
    assert warning_line("x", DeprecationWarning, "f.py", 1, "source") == "Warning: x (DeprecationWarning)\n"
