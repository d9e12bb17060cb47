"""Benchmark: all-class Respond-CAM + Grad-CAM against a forward pass and against a per-class loop.

Prints, per model (CNN-1 and CNN-2, 23 classes, 40^3 tiles): time per tile of a forward pass alone (no_grad),
of tomocam's all-class CAM (both methods), of the same without the Linear-layer reduction (a plain batched
vector-Jacobian product), of the per-class loop that MONAI and pytorch-grad-cam run (forward + full backward per
class), and of Captum's LayerGradCam called once per class, as ratios to the forward pass. All timings of one
model come from the same run, interleaved, so the ratios hold on a noisy machine. Usage::

    python benchmarks/bench_cam.py [--batch 16] [--repeats 5] [--device cpu] [--models cnn1 cnn2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from unittest import mock

import torch

import tomocam
from tomocam.explain import cam as cam_module
from tomocam.models import cnn1, cnn2


def per_class_loop(model: torch.nn.Module, x: torch.Tensor, layer: str) -> None:
    """The shape of MONAI's and pytorch-grad-cam's Grad-CAM: per class, a forward pass and a full backward pass.

    Hooks keep the layer's activation and gradient; ``backward()`` also fills every parameter's ``.grad``, as
    those libraries' ``score.backward()`` does. Both weightings are computed from what the hooks kept.
    """
    module = dict(model.named_modules())[layer]
    kept: dict[str, torch.Tensor] = {}

    def keep(_m: torch.nn.Module, _i: tuple, out: torch.Tensor) -> None:
        kept["a"] = out
        out.register_hook(lambda g: kept.__setitem__("g", g))

    handle = module.register_forward_hook(keep)
    try:
        for c in range(model.classifier.fc3.out_features):
            model.zero_grad(set_to_none=True)
            model(x)[:, c].sum().backward()
            a, g = kept["a"].detach(), kept["g"]
            axes = tuple(range(2, a.dim()))
            respond = (a * g).sum(axes) / (a.sum(axes) + 1e-7)
            torch.einsum("nl,nl...->n...", respond, a)
            torch.einsum("nl,nl...->n...", g.mean(axes), a)
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)


def captum_loop(model: torch.nn.Module, x: torch.Tensor, layer: str) -> None:
    """Captum's LayerGradCam (an independent Grad-CAM), one call per class as its API takes one target."""
    from captum.attr import LayerGradCam

    explainer = LayerGradCam(model, dict(model.named_modules())[layer])
    for c in range(model.classifier.fc3.out_features):
        explainer.attribute(x, target=c, relu_attributions=False)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-repeats", type=int, default=1, help="repeats of the slow per-class loop")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["cnn1", "cnn2"])
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} batch={args.batch}")
    header = (f"{'model':6} {'forward ms/tile':>16} {'all-class ms/tile':>18} {'ratio':>6} "
              f"{'plain VJP ratio':>16} {'loop ratio':>11} {'captum ratio':>13} {'speed-up vs loop':>17}")
    print(header)
    print("-" * len(header))
    for name in args.models:
        model = {"cnn1": cnn1, "cnn2": cnn2}[name]().to(device).eval()
        x = torch.randn(args.batch, 1, 40, 40, 40, device=device)
        layer = model.default_cam_layer

        def forward() -> None:
            with torch.no_grad():
                model(x)

        def tomocam_all() -> None:
            tomocam.compute_cams(model, x, layer)

        def plain_vjp() -> None:
            with mock.patch.object(cam_module, "_head_linear", return_value=None):
                tomocam.compute_cams(model, x, layer)

        for fn in (forward, tomocam_all, plain_vjp):  # warm-up
            fn()
        times: dict[str, list[float]] = {"forward": [], "tomocam": [], "plain": []}
        for _ in range(args.repeats):  # interleaved so that load changes hit every variant alike
            times["forward"].append(timed(forward, device))
            times["tomocam"].append(timed(tomocam_all, device))
            times["plain"].append(timed(plain_vjp, device))
        loop = min(timed(lambda: per_class_loop(model, x, layer), device) for _ in range(args.loop_repeats))
        captum = min(timed(lambda: captum_loop(model, x, layer), device) for _ in range(args.loop_repeats))
        med = {k: statistics.median(v) for k, v in times.items()}
        per_tile = 1000 / args.batch
        print(f"{name:6} {med['forward'] * per_tile:16.2f} {med['tomocam'] * per_tile:18.2f} "
              f"{med['tomocam'] / med['forward']:6.2f} {med['plain'] / med['forward']:16.2f} "
              f"{loop / med['forward']:11.1f} {captum / med['forward']:13.1f} {loop / med['tomocam']:17.1f}")


if __name__ == "__main__":
    main()
