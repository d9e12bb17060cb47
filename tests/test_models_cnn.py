"""CNN-1 and CNN-2 have the paper's feature-map sizes at the authors' CAM layer."""

from __future__ import annotations

import pytest
import torch

from tomocam.models import cnn1, cnn2
from tomocam.models.summary import layer_shapes


@pytest.mark.parametrize("factory,side", [(cnn1, 10), (cnn2, 5)])
def test_last_maxpool_has_64_maps_of_paper_size(factory, side):
    model = factory()
    shapes = {layer.name: layer.shape for layer in layer_shapes(model, (1, 40, 40, 40))}
    assert shapes[model.default_cam_layer] == (64, side, side, side)
    assert shapes["classifier.fc3"] == (23,)
    assert model(torch.zeros(2, 1, 40, 40, 40)).shape == (2, 23)


def test_input_size_must_fit_the_pooling():
    with pytest.raises(ValueError, match="divisible by 8"):
        cnn2(input_size=36)


@pytest.mark.parametrize("factory", [cnn1, cnn2])
def test_no_dropout_by_default_as_the_authors(factory):
    torch.manual_seed(0)
    model = factory(num_classes=3, input_size=16, fc_width=8)
    x = torch.randn(4, 1, 16, 16, 16)
    torch.testing.assert_close(model.train()(x), model.eval()(x), rtol=0, atol=0)  # train mode changes nothing
    dropped = factory(num_classes=3, input_size=16, fc_width=8, dropout=0.5)
    assert dropped.tomocam_architecture[1]["dropout"] == 0.5  # recorded in the checkpoint's arch args
    torch.manual_seed(0)
    assert not torch.equal(dropped.train()(x), dropped.eval()(x))
