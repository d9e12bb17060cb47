"""Model-input preparation: cut -> resample -> invert -> normalise, against direct definitions, on CPU tensors
(the code is device-generic: the same calls run on the GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomocam.models import normalise
from tomocam.models.inputs import InputSpec, cut_tiles, gather_tiles, model_inputs, prepare, resample, stack_tiles
from tomocam.models.normalisation import normalise_


def _volume(shape=(20, 22, 24), seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("cut", [cut_tiles, gather_tiles, stack_tiles])  # the GPU's way (gather) on CPU tensors too
@pytest.mark.parametrize("as_tensor", [False, True])
def test_cut_tiles_are_the_slices_at_their_starts(cut, as_tensor):
    vol = _volume()
    starts = [(0, 0, 0), (3, 5, 7), (10, 12, 16)]
    tiles = cut(vol, torch.tensor(starts) if as_tensor else starts, (8, 10, 8))
    assert tiles.shape == (3, 8, 10, 8)
    for t, (z, y, x) in zip(tiles, starts):
        assert torch.equal(t, vol[z : z + 8, y : y + 10, x : x + 8])
    tiles[0] += 1  # a copy: the volume is left as it is
    assert torch.equal(vol[:8, :10, :8], _volume()[:8, :10, :8])


def test_cut_tiles_of_a_2d_image():
    image = _volume((12, 14))
    for cut in (gather_tiles, stack_tiles):
        tiles = cut(image, [(0, 0), (4, 6)], (8, 8))
        assert torch.equal(tiles[1], image[4:12, 6:14]) and tiles.shape == (2, 8, 8)


def test_binning_is_the_mean_of_voxel_blocks_and_same_size_is_untouched():
    x = _volume((2, 8, 8, 8)).unsqueeze(1)  # (n, 1, 8, 8, 8)
    binned = resample(x, (4, 4, 4))
    expected = x.reshape(2, 1, 4, 2, 4, 2, 4, 2).mean((3, 5, 7))
    torch.testing.assert_close(binned, expected)
    assert resample(x, (8, 8, 8)) is x


@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("normalisation", ["zscore", "raw"])
def test_prepare_is_resample_then_invert_then_normalise(invert, normalisation):
    vol = _volume((16, 16, 16)) * 3 + 1
    spec = InputSpec(tile=(8, 8, 8), size=(4, 4, 4), normalisation=normalisation, invert=invert)
    starts = [(0, 0, 0), (8, 4, 2)]
    got = model_inputs(vol, starts, spec)
    tiles = torch.stack([vol[z : z + 8, y : y + 8, x : x + 8] for z, y, x in starts]).unsqueeze(1)
    binned = tiles.reshape(2, 1, 4, 2, 4, 2, 4, 2).mean((3, 5, 7))
    expected = normalise(-binned if invert else binned, normalisation)
    assert got.shape == (2, 1, 4, 4, 4) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    if normalisation == "zscore":
        torch.testing.assert_close(got.mean((1, 2, 3, 4)), torch.zeros(2), atol=1e-5, rtol=0)


def test_integer_tiles_become_float_and_2d_works():
    vol = torch.arange(100, dtype=torch.int16).reshape(10, 10)
    spec = InputSpec(tile=(4, 4), size=(2, 2), normalisation="raw")
    x = prepare(cut_tiles(vol, [(0, 0)], (4, 4)), spec)
    assert x.dtype == torch.float32 and x.shape == (1, 1, 2, 2)
    torch.testing.assert_close(x[0, 0], torch.tensor([[5.5, 7.5], [25.5, 27.5]]))


def test_zscore_matches_the_float64_definition_for_any_offset_and_in_place():
    rng = np.random.default_rng(2)
    x = np.stack([rng.standard_normal((1, 6, 7, 5)) * 0.5 + 1e3,  # a mean 2000 times the spread
                  rng.standard_normal((1, 6, 7, 5)) * 3 - 2,
                  np.full((1, 6, 7, 5), 5.0)]).astype(np.float32)  # (3, 1, 6, 7, 5), the last one constant
    x64 = x.astype(np.float64)
    mean = x64.mean((1, 2, 3, 4), keepdims=True)
    sd = x64.std((1, 2, 3, 4), keepdims=True)
    expected = (x64 - mean) / np.maximum(sd, 1e-6)
    t = torch.from_numpy(x.copy())
    got = normalise(t, "zscore")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(t, torch.from_numpy(x))  # left as it was
    assert not got[2].any()  # a constant sample becomes zeros
    same = normalise_(t, "zscore")
    assert same.data_ptr() == t.data_ptr() and torch.equal(same, got)


def test_prepare_and_model_inputs_leave_their_inputs_untouched():
    vol = _volume((16, 16, 16))
    before = vol.clone()
    spec = InputSpec(tile=(8, 8, 8), size=(8, 8, 8), normalisation="zscore", invert=True)
    tiles = cut_tiles(vol, [(0, 0, 0), (4, 8, 2)], (8, 8, 8))
    tiles_before = tiles.clone()
    x = prepare(tiles, spec)
    torch.testing.assert_close(x, normalise(-tiles_before.unsqueeze(1), "zscore"))
    assert torch.equal(tiles, tiles_before)
    torch.testing.assert_close(model_inputs(vol, [(0, 0, 0), (4, 8, 2)], spec), x)
    assert torch.equal(vol, before)
