"""Evaluation's data splits: stratified, disjoint, paper-sized and seeded; the dataset hash; reading inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomocam.errors import InputError
from tomocam.evaluate.splits import labels_digest, load_inputs, split_by_tomogram, split_indices
from tomocam.simulate import Acquisition, Sampling, builtin_structures, open_dataset, simulate_subtomograms


def test_split_is_stratified_disjoint_and_paper_sized():
    labels = np.repeat(np.arange(4), 50)
    s = split_indices(labels, seed=3)
    all_idx = np.concatenate([s.fit, s.val, s.test])
    assert sorted(all_idx.tolist()) == list(range(200))  # disjoint and complete
    assert len(s.test) == 40 and len(s.val) == 32 and len(s.fit) == 128  # 4:1, then 80/20
    for part in (s.fit, s.val, s.test):
        assert len(np.unique(np.bincount(labels[part]))) == 1  # every class equally represented
    again = split_indices(labels, seed=3)
    np.testing.assert_array_equal(s.test, again.test)
    assert not np.array_equal(s.test, split_indices(labels, seed=4).test)


def test_labels_digest_tells_datasets_apart():
    labels = np.repeat(np.arange(3), 4)
    assert labels_digest(labels) == labels_digest(labels.astype(np.int32))  # the dtype does not matter
    assert labels_digest(labels) != labels_digest(labels[::-1])


def test_load_inputs_normalises_as_asked(tmp_path):
    shapes = builtin_structures(["shell", "rod"], voxel_size=20.0)
    ds = open_dataset(simulate_subtomograms(shapes, tmp_path / "d.zarr", n_per_class=2,
                                            acquisition=Acquisition(snr=math.inf), sampling=Sampling(box=8),
                                            seed=0, workers=1))
    x = load_inputs(ds, np.array([1, 3]))
    assert x.shape == (2, 1, 8, 8, 8) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(dim=(1, 2, 3, 4)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(1, 2, 3, 4), unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    raw = load_inputs(ds, np.array([1, 3]), normalisation="raw")
    np.testing.assert_array_equal(raw[:, 0].numpy(), ds.volumes.get_orthogonal_selection((np.array([1, 3]),)))


def test_a_split_by_tomogram_never_shares_a_tomogram_between_training_and_test():
    rng = np.random.default_rng(0)
    tomograms = rng.choice([f"TS_{i:02d}" for i in range(7)], size=600)
    labels = rng.integers(0, 3, size=600)
    for seed in range(5):
        s = split_by_tomogram(labels, tomograms, seed)
        train, test = set(tomograms[np.concatenate([s.fit, s.val])]), set(tomograms[s.test])
        assert not train & test and test == set(s.test_tomograms) and train == set(s.train_tomograms)
        assert sorted(np.concatenate([s.fit, s.val, s.test]).tolist()) == list(range(600))  # disjoint, complete
        assert len(s.test_tomograms) == 1  # a fifth of 7, at least one
    chosen = split_by_tomogram(labels, tomograms, 0, test_tomograms=["TS_03", "TS_05"])
    assert set(tomograms[chosen.test]) == {"TS_03", "TS_05"} and "TS_03" not in tomograms[chosen.fit]
    assert chosen.record(0, 0.2, 0.2)["test_tomograms"] == ["TS_03", "TS_05"]


def test_a_split_by_tomogram_names_what_it_cannot_do():
    labels, tomograms = np.array([0, 0, 1, 1, 1, 0]), np.array(["a", "a", "a", "b", "b", "b"])
    with pytest.raises(InputError, match="class 'ribosome' has 1 box"):
        split_by_tomogram(labels, tomograms, 0, test_tomograms=["a"], classes=["ribosome", "membrane"])
    with pytest.raises(InputError, match="'c' has no box"):
        split_by_tomogram(labels, tomograms, 0, test_tomograms=["c"])
    with pytest.raises(InputError, match="none is left"):
        split_by_tomogram(labels, tomograms, 0, test_tomograms=["a", "b"])
    with pytest.raises(InputError, match="at least two tomograms"):
        split_by_tomogram(labels, np.array(["a"] * 6), 0)


def test_a_recorded_split_is_rebuilt_by_box_or_by_tomogram(tmp_path):
    from tomocam.evaluate.splits import make_split, rebuild_split
    from tomocam.simulate.dataset import Dataset

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=300)
    ds = Dataset(tmp_path, None, labels, ["a", "b", "c"], 10.0, {}, rng.choice(["t1", "t2", "t3", "t4"], size=300))
    for split in (make_split(ds, 7, by="tomogram", test_tomograms=["t2"]), make_split(ds, 7, by="box"),
                  make_split(ds, 7, by="tomogram")):
        again = rebuild_split(ds, split.record(7, 0.2, 0.2))
        for part in ("fit", "val", "test"):
            np.testing.assert_array_equal(getattr(again, part), getattr(split, part))
    with pytest.raises(InputError, match="not made by 'tomocam extract'"):
        make_split(Dataset(tmp_path, None, labels, ["a", "b", "c"], 10.0, {}), 7, by="tomogram")
