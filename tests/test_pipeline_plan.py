"""Plan defaults that depend on the device."""

from __future__ import annotations

import pytest

from tomocam.pipeline.plan import default_batch_size


@pytest.mark.parametrize(("device", "batch"), [("cpu", 32), ("cuda:0", 256), ("cuda", 256)])
def test_default_batch_size_is_larger_on_a_gpu(device, batch):
    assert default_batch_size(device) == batch
