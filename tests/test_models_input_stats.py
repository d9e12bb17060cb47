"""Out-of-distribution warnings: input statistics recorded at training, compared on a tomogram's tiles; and
predictions that collapse to one class."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc
from scipy import stats

from tomocam.models.input_stats import (
    far_from_training,
    input_moments,
    predictions_collapsed,
    summarise_inputs,
)


def test_moments_are_scipys_skewness_and_excess_kurtosis_per_sample():
    x = np.random.default_rng(0).gamma(2.0, size=(5, 4, 6, 7))
    flat = x.reshape(5, -1)
    expected = np.stack([stats.skew(flat, axis=1), stats.kurtosis(flat, axis=1)], axis=1)
    np.testing.assert_allclose(input_moments(x), expected, rtol=1e-10)
    np.testing.assert_allclose(input_moments(3.0 * x - 7.0), expected, rtol=1e-8)  # offset and scale free
    assert input_moments(np.ones((2, 3, 3))).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_summary_holds_the_quantiles_of_the_moments():
    x = np.random.default_rng(1).normal(size=(200, 8, 8, 8))
    summary = summarise_inputs(x)
    q = np.quantile(input_moments(x), [0.05, 0.5, 0.95], axis=0)
    assert summary["n"] == 200
    np.testing.assert_allclose(summary["skewness"], q[:, 0], atol=1e-4)
    np.testing.assert_allclose(summary["kurtosis"], q[:, 1], atol=1e-4)


def _boxes(sign: float, n: int = 100, seed: int = 0) -> np.ndarray:
    """Boxes of noise with one bright (sign +1) or dark (-1) Gaussian blob each: `(n, 16, 16, 16)`."""
    rng = np.random.default_rng(seed)
    grid = np.indices((16,) * 3) - 7.5
    blob = np.exp(-0.5 * (grid**2).sum(0) / 2.0**2)
    return np.stack([sign * blob + 0.2 * rng.standard_normal((16,) * 3) for _ in range(n)])


def test_tiles_like_the_training_data_pass_and_inverted_contrast_is_far():
    reference = summarise_inputs(_boxes(+1))
    assert far_from_training(reference, input_moments(_boxes(+1, seed=1))) is None
    warning = far_from_training(reference, input_moments(_boxes(-1, seed=1)))
    assert warning is not None and "skewness -" in warning and "--invert" in warning
    assert far_from_training(None, input_moments(_boxes(-1))) is None  # an older checkpoint: no check


def test_collapsed_predictions_warn():
    assert "calls 95 of 100 tiles 'background' with mean probability 0.97" in predictions_collapsed(
        [("background", 95, 0.97), ("shell", 5, 0.01)], 100)
    assert predictions_collapsed([("background", 80, 0.97)], 100) is None  # a mixture of classes
    assert predictions_collapsed([("background", 95, 0.50)], 100) is None  # unsure, not confidently uniform
    assert predictions_collapsed([], 0) is None


@pytest.mark.parametrize("invert", [False, True])
def test_plan_tiles_are_compared_with_the_checkpoint_statistics(tmp_path, invert):
    """Bright particles on noise, a model whose training inputs were bright particles: no warning; the same
    tomogram explained with --invert (the model sees dark particles): a warning."""
    from tomocam.models import load_checkpoint
    from tomocam.pipeline import ExplainConfig, make_plan
    from tomocam.pipeline.drift import input_drift, sample_inputs

    volume, _ = particles_volume((48, 48, 48), n=27, seed=3, noise=0.2)
    mrc = write_mrc(tmp_path / "t.mrc", volume)
    model = matched_filter_checkpoint(tmp_path / "m.pt")
    plan = make_plan(ExplainConfig(tomogram=str(mrc), output=str(tmp_path / "o.zarr"), model=str(model),
                                   invert=invert), str(tmp_path / "o.zarr"))
    _, meta = load_checkpoint(model)
    training = sample_inputs(dataclasses.replace(plan, invert=False), n=1000)  # what the model "trained" on
    reference = summarise_inputs(training)
    warning = input_drift(plan, reference)
    assert (warning is not None) == invert
    assert input_drift(plan, meta.provenance.get("input_stats")) is None  # recorded none: nothing to compare

