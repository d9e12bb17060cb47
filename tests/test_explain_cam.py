"""All-class Respond-CAM and Grad-CAM against exact oracles, a per-class reference and Captum."""

from __future__ import annotations

from collections import OrderedDict
from unittest import mock

import pytest
import torch
from torch import nn

import tomocam
from tomocam.errors import ClassError, LayerError
from tomocam.explain import cam as cam_module
from tomocam.models import cnn1, cnn2


def single_fc_model(ndim: int, channels: int, size: int, classes: int, target: str) -> nn.Module:
    """conv-ReLU-conv-ReLU-pool, then Flatten and ONE Linear layer: Respond-CAM sums exactly to the score."""
    conv, pool = (nn.Conv2d, nn.MaxPool2d) if ndim == 2 else (nn.Conv3d, nn.MaxPool3d)
    layers = OrderedDict(
        conv1=conv(2, 6, 3, padding=1), relu1=nn.ReLU(),
        conv2=conv(6, channels, 3, padding=1), relu2=nn.ReLU(),
        pool=pool(2),
    )
    side = size // 2 if target == "features.pool" else size
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(layers),
        flatten=nn.Flatten(),
        fc=nn.Linear(channels * side**ndim, classes),
    ))


def head_after(model: nn.Module, target: str) -> nn.Module:
    """Make the single-FC model end at ``target``: drop the pool when the target is the ReLU before it."""
    if target == "features.relu2":
        model.features.pool = nn.Identity()
    return model


def reference_cams(model: nn.Module, x: torch.Tensor, layer: str, eps: float = cam_module.DEFAULT_EPS):
    """Plain per-class autograd in float64: one forward and one gradient per class, the formulas verbatim."""
    model = model.double()
    module = dict(model.named_modules())[layer]
    kept = {}
    handle = module.register_forward_hook(lambda m, i, o: kept.__setitem__("a", o))
    try:
        logits = model(x.double())
        maps = {"respond": [], "gradcam": []}
        for c in range(logits.shape[1]):
            (g,) = torch.autograd.grad(logits[:, c].sum(), kept["a"], retain_graph=True)
            a = kept["a"]
            axes = tuple(range(2, a.dim()))
            alpha_r = (a * g).sum(axes) / (a.sum(axes) + eps)  # (n, l)
            alpha_g = g.mean(axes)
            maps["respond"].append(torch.einsum("nl,nl...->n...", alpha_r, a))
            maps["gradcam"].append(torch.einsum("nl,nl...->n...", alpha_g, a))
    finally:
        handle.remove()
        model.float()
    return logits.detach(), {k: torch.stack(v, 1).detach() for k, v in maps.items()}


@pytest.mark.parametrize("ndim,size,channels,batch", [(2, 12, 5, 3), (2, 9, 8, 2), (3, 8, 4, 3), (3, 6, 7, 2)])
@pytest.mark.parametrize("target", ["features.pool", "features.relu2"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_sum_to_score_is_exact_with_one_linear_layer(ndim, size, channels, batch, target, dtype, tol):
    model = head_after(single_fc_model(ndim, channels, size - size % 2, 4, target), target).to(dtype)
    x = torch.randn(batch, 2, *([size - size % 2] * ndim), dtype=dtype)
    result = tomocam.compute_cams(model, x, target, eps=1e-12 if dtype == torch.float64 else 1e-7)
    sums = result.maps["respond"].double().flatten(2).sum(-1)  # (n, k)
    bias = model.fc.bias.detach().double()
    error = (sums + bias - result.logits.double()).abs().max()
    assert error / result.logits.abs().max() < tol
    # Grad-CAM has no such property: it misses the score by far more.
    grad_error = (result.maps["gradcam"].double().flatten(2).sum(-1) + bias - result.logits.double()).abs().max()
    assert grad_error > 100 * error


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("name", ["cnn1", "cnn2", "2d", "several_fc"])
def test_all_classes_equal_per_class_reference(name, fast_path):
    if name == "cnn1":
        model, x, layer = cnn1(num_classes=5, input_size=16, fc_width=32), torch.randn(3, 1, 16, 16, 16), None
    elif name == "cnn2":
        model, x, layer = cnn2(num_classes=5, input_size=16, fc_width=32), torch.randn(3, 1, 16, 16, 16), None
    elif name == "2d":
        model = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(3, 8, 3), relu=nn.ReLU(inplace=True), pool=nn.MaxPool2d(2),
            flatten=nn.Flatten(), fc1=nn.Linear(8 * 7 * 7, 16), relu2=nn.ReLU(inplace=True), fc2=nn.Linear(16, 6),
        ))
        x, layer = torch.randn(4, 3, 16, 16), "pool"
    else:
        model = nn.Sequential(OrderedDict(
            conv=nn.Conv3d(1, 4, 3, padding=1), relu=nn.ReLU(), pool=nn.AvgPool3d(2), flatten=nn.Flatten(),
            fc1=nn.Linear(4 * 27, 20), tanh=nn.Tanh(), fc2=nn.Linear(20, 20), elu=nn.ELU(), fc3=nn.Linear(20, 7),
        ))
        x, layer = torch.randn(2, 1, 6, 6, 6), "pool"
    model.eval()
    layer = layer or model.default_cam_layer
    patch = mock.patch.object(cam_module, "_head_linear", return_value=None) if not fast_path else mock.MagicMock()
    with patch:
        result = tomocam.compute_cams(model, x, layer)
    logits, maps = reference_cams(model, x, layer)
    torch.testing.assert_close(result.logits.double(), logits, rtol=1e-5, atol=1e-5)
    for method in ("respond", "gradcam"):
        scale = maps[method].abs().max()
        torch.testing.assert_close(result.maps[method].double() / scale, maps[method] / scale, rtol=0, atol=1e-5)


def test_fast_path_is_taken_only_when_the_layer_feeds_a_linear_alone():
    model = cnn2(num_classes=3, input_size=16, fc_width=8).eval()
    calls = []
    original = cam_module._head_linear
    with mock.patch.object(cam_module, "_head_linear", side_effect=lambda *a: calls.append(original(*a)) or calls[-1]):
        tomocam.compute_cams(model, torch.randn(2, 1, 16, 16, 16), "features.pool2")
        tomocam.compute_cams(model, torch.randn(2, 1, 16, 16, 16), "features.conv4")
    assert calls[0] is not None and calls[0][0] is model.classifier.fc1
    assert calls[1] is None  # conv4 reaches fc1 through relu4 and pool2


class SkipModel(nn.Module):
    """The layer feeds a Linear layer AND the logits directly: the fast path would miss the second route."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4**3, 4)

    def forward(self, x):
        a = torch.relu(self.conv(x))
        return self.fc(a.flatten(1)) + a.mean((2, 3, 4)).sum(1, keepdim=True) ** 2


def test_layer_reaching_logits_by_two_routes_uses_full_gradients():
    model = SkipModel()
    x = torch.randn(2, 1, 4, 4, 4)
    result = tomocam.compute_cams(model, x, "conv")
    logits, maps = reference_cams(model, x, "conv")
    torch.testing.assert_close(result.maps["respond"].double(), maps["respond"], rtol=1e-4, atol=1e-6)


def test_grad_cam_matches_captum_on_a_3d_cnn():
    from captum.attr import LayerGradCam

    model = cnn2(num_classes=4, input_size=16, fc_width=16).eval()
    x = torch.randn(3, 1, 16, 16, 16)
    result = tomocam.compute_cams(model, x, "features.pool2", methods=("gradcam",))
    explainer = LayerGradCam(model, model.features.pool2)
    for c in range(4):
        expected = explainer.attribute(x, target=c, relu_attributions=False)[:, 0]  # (n, 5, ...) sum over l
        torch.testing.assert_close(result.maps["gradcam"][:, c], expected.float(), rtol=1e-4, atol=1e-7)


def test_batched_equals_one_by_one():
    model = cnn1(num_classes=6, input_size=16, fc_width=16).eval()
    x = torch.randn(5, 1, 16, 16, 16)
    batched = tomocam.compute_cams(model, x, "features.pool2")
    for i in range(5):
        single = tomocam.compute_cams(model, x[i:i + 1], "features.pool2")
        torch.testing.assert_close(single.logits, batched.logits[i:i + 1], rtol=1e-5, atol=1e-6)
        for method in ("respond", "gradcam"):
            torch.testing.assert_close(single.maps[method], batched.maps[method][i:i + 1], rtol=1e-4, atol=1e-8)


def test_class_subset_and_order():
    model = cnn2(num_classes=6, input_size=16, fc_width=16).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    full = tomocam.compute_cams(model, x, "features.pool2")
    part = tomocam.compute_cams(model, x, "features.pool2", classes=[4, 1])
    assert part.classes == (4, 1)
    torch.testing.assert_close(part.logits, full.logits[:, [4, 1]])
    torch.testing.assert_close(part.maps["respond"], full.maps["respond"][:, [4, 1]], rtol=1e-5, atol=1e-9)


def all_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_model_state_is_left_as_found_after_success_and_failure():
    model = cnn2(num_classes=3, input_size=16, fc_width=8, dropout=0.0)
    model.train()
    model.features.conv1.weight.requires_grad_(False)
    marker = torch.full_like(model.classifier.fc3.weight, 7.0)
    model.classifier.fc3.weight.grad = marker
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randn(2, 1, 16, 16, 16)
    tomocam.compute_cams(model, x, "features.pool2")
    with pytest.raises(ClassError):
        tomocam.compute_cams(model, x, "features.pool2", classes=[3])
    with pytest.raises(LayerError):
        tomocam.compute_cams(model, x, "classifier.fc1")
    assert model.training and model.features.training
    assert all_hooks(model) == 0
    assert model.features.conv1.weight.requires_grad is False
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "features.conv1.weight")
    assert model.classifier.fc3.weight.grad is marker
    assert all(p.grad is None for n, p in model.named_parameters() if n != "classifier.fc3.weight")
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])


def test_works_inside_no_grad():
    model = cnn2(num_classes=3, input_size=16, fc_width=8).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    expected = tomocam.compute_cams(model, x, "features.pool2")
    with torch.no_grad():
        inside = tomocam.compute_cams(model, x, "features.pool2")
    torch.testing.assert_close(inside.maps["respond"], expected.maps["respond"])


def test_inplace_relu_after_the_layer_does_not_change_the_activation():
    """conv1 is followed by ReLU(inplace=True): the maps must use conv1's signed output, as without in-place."""
    model = cnn2(num_classes=3, input_size=16, fc_width=8).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    result = tomocam.compute_cams(model, x, "features.conv3")
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    logits, maps = reference_cams(model, x, "features.conv3")
    scale = maps["gradcam"].abs().max()
    torch.testing.assert_close(result.maps["gradcam"].double() / scale, maps["gradcam"] / scale, rtol=0, atol=1e-5)
    assert (maps["gradcam"] < 0).any()  # signed maps: the reference really differs from a post-ReLU one


def test_unknown_layer_lists_close_names():
    model = cnn2(num_classes=3, input_size=16, fc_width=8)
    with pytest.raises(LayerError, match="features.pool2"):
        tomocam.compute_cams(model, torch.randn(1, 1, 16, 16, 16), "features.pool3")


def test_layer_without_spatial_axes_is_refused():
    model = cnn2(num_classes=3, input_size=16, fc_width=8)
    with pytest.raises(LayerError, match="no spatial axes"):
        tomocam.compute_cams(model, torch.randn(1, 1, 16, 16, 16), "classifier.fc2")


def test_unknown_method_is_refused():
    model = cnn2(num_classes=3, input_size=16, fc_width=8)
    with pytest.raises(ValueError, match="unknown CAM method"):
        tomocam.compute_cams(model, torch.randn(1, 1, 16, 16, 16), "features.pool2", methods=("gradcam++",))


def test_autocast_keeps_float32_maps_close_to_float32_run():
    model = cnn2(num_classes=4, input_size=16, fc_width=16).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    exact = tomocam.compute_cams(model, x, "features.pool2")
    mixed = tomocam.compute_cams(model, x, "features.pool2", autocast=torch.bfloat16)
    assert mixed.maps["respond"].dtype == torch.float32 and mixed.logits.dtype == torch.float32
    # bfloat16 keeps ~3 significant digits in the features: the maps agree in direction, not bit for bit.
    similarity = torch.nn.functional.cosine_similarity(
        mixed.maps["respond"].flatten(), exact.maps["respond"].flatten(), dim=0
    )
    assert similarity > 0.9


@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
@pytest.mark.parametrize("arch", [cnn1, cnn2])
def test_channels_last_model_takes_the_linear_reduction_and_gives_the_same_maps(arch, autocast):
    # GPU workers run models in channels_last_3d; the layout must change neither the path nor the numbers.
    torch.manual_seed(0)
    model = arch(num_classes=5, input_size=16, fc_width=16).eval()
    x = torch.randn(3, 1, 16, 16, 16)
    layer = model.default_cam_layer
    expected = tomocam.compute_cams(model, x, layer, autocast=autocast)
    model = model.to(memory_format=torch.channels_last_3d)
    calls = []
    original = cam_module._head_linear
    with mock.patch.object(cam_module, "_head_linear", side_effect=lambda *a: calls.append(original(*a)) or calls[-1]):
        result = tomocam.compute_cams(model, x.to(memory_format=torch.channels_last_3d), layer, autocast=autocast)
    assert calls[0] is not None and calls[0][0] is model.classifier.fc1
    tol = 1e-5 if autocast is None else 2e-2
    for method in ("respond", "gradcam"):
        scale = expected.maps[method].abs().max()
        torch.testing.assert_close(result.maps[method] / scale, expected.maps[method] / scale, rtol=0, atol=tol)
