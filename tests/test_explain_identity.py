"""Grad-CAM's map sum = Respond-CAM's - Z * sum_l Cov_s(A_l, dy/dA_l), on the paper's CNN-1 and CNN-2 in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomocam.explain import compute_cams
from tomocam.explain.identity import covariance_term
from tomocam.explain.metrics import map_sums
from tomocam.models import cnn1, cnn2
from tomocam.simulate import Acquisition, Sampling, builtin_structures, open_dataset, simulate_subtomograms
from tomocam.train import train_model

LAYER = "features.pool2"


def _sums(model, x, eps):
    res = compute_cams(model, x, LAYER, eps=eps)
    return map_sums(res.maps["gradcam"]), map_sums(res.maps["respond"]), res.logits.numpy()


def _check_identity(model, x):
    model = model.double().eval()
    x = x.double()
    cov = covariance_term(model, x, LAYER).numpy()
    # eps 1e-300: Respond-CAM's weights are sum_s(A g) / sum_s A exactly (a dead channel has A = 0, weight 0)
    g, r, y = _sums(model, x, eps=1e-300)
    scale = np.abs(r).max()
    np.testing.assert_allclose(g + cov, r, rtol=0, atol=1e-12 * scale)
    assert np.abs(cov).max() > 1e-3 * scale  # the term is not trivially zero: the check can fail
    # with the default eps (1e-7) the identity holds to eps / sum_s A
    g7, r7, _ = _sums(model, x, eps=1e-7)
    np.testing.assert_allclose(g7, g, rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(g7 + cov, r7, rtol=1e-6, atol=1e-6 * scale)
    return g, r, cov, y


@pytest.mark.parametrize("factory,size", [(cnn1, 24), (cnn2, 40)])
def test_identity_on_untrained_paper_networks(factory, size):
    torch.manual_seed(0)
    model = factory(num_classes=5, input_size=size)
    x = torch.randn(3, 1, size, size, size)
    _check_identity(model, x)


@pytest.mark.slow
def test_identity_on_a_briefly_trained_cnn2(tmp_path):
    shapes = builtin_structures(["shell", "rod", "disc"], voxel_size=20.0)
    ds = open_dataset(simulate_subtomograms(shapes, tmp_path / "d.zarr", n_per_class=12,
                                            acquisition=Acquisition(snr=math.inf),
                                            sampling=Sampling(box=24, max_shift=3), seed=0, workers=1))
    model = train_model(ds, "cnn2", epochs=2, batch_size=8, seed=0, device="cpu", arch_kwargs={"fc_width": 32},
                        normalisation="raw").model
    x = torch.from_numpy(ds.volumes[:6]).unsqueeze(1)
    g, r, cov, y = _check_identity(model, x)
    assert not np.allclose(g, r)  # Grad-CAM's sum differs from Respond-CAM's by exactly the covariance term


def test_covariance_term_leaves_the_model_as_found():
    model = cnn2(num_classes=3, input_size=16, fc_width=8)
    before = [p.requires_grad for p in model.parameters()]
    covariance_term(model, torch.randn(2, 1, 16, 16, 16), LAYER, classes=[2, 0])
    assert [p.requires_grad for p in model.parameters()] == before
    assert all(p.grad is None for p in model.parameters())
    assert covariance_term(model, torch.randn(2, 1, 16, 16, 16), LAYER, classes=[2, 0]).shape == (2, 2)
