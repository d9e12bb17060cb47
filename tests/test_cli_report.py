"""The run summary's store size: bytes on disk as ``du`` counts them, printed in binary units."""

from __future__ import annotations

import subprocess

import pytest

from tomocam.cli.report import disk_usage, human_bytes


def test_disk_usage_agrees_with_du(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10_000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 100_000)
    (tmp_path / "sub" / "empty").touch()
    du = subprocess.run(["du", "-s", "-B1", str(tmp_path)], capture_output=True, text=True, check=True)
    folders = sum(p.stat().st_blocks * 512 for p in (tmp_path, tmp_path / "sub"))  # du counts folders too
    assert disk_usage(tmp_path) == int(du.stdout.split()[0]) - folders
    assert disk_usage(tmp_path) >= 110_000


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"),
                                         (10 * 2**20, "10 MiB"), (123_456_789, "118 MiB"), (5 * 2**40, "5 TiB")])
def test_human_bytes(n, text):
    assert human_bytes(n) == text
