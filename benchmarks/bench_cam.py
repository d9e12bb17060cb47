"""Benchmark: all-class Respond-CAM + Grad-CAM against a forward pass and against a per-class loop.

Prints, per model (CNN-1 and CNN-2, 23 classes, 40^3 tiles), batch size, precision and memory layout: tiles/s of a
forward pass alone (no_grad), of tomocam's all-class CAM (both methods), the ratio of their times, the same ratio
without the Linear-layer reduction (a plain batched vector-Jacobian product), of the per-class loop that MONAI
and pytorch-grad-cam run (forward + full backward per class), and of Captum's LayerGradCam called once per class
(skipped where Captum is not installed). All timings of one row come from the same run, interleaved, so the ratios
hold on a noisy machine. ``--dtype bf16`` runs every variant under ``torch.autocast`` (tomocam's
``--autocast bf16``); ``--layout channels_last`` puts the model and input in ``channels_last_3d`` memory, as
tomocam's GPU workers do. Usage::

    python benchmarks/bench_cam.py [--batch 16] [--dtype float32 bf16] [--layout contiguous channels_last]
                                   [--device auto] [--models cnn1 cnn2] [--json rows.jsonl]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import statistics
import time
from collections.abc import Callable
from unittest import mock

import torch

import tomocam
from tomocam.device import DEVICE_HELP, resolve_device
from tomocam.explain import cam as cam_module
from tomocam.explain.methods import AUTOCAST_DTYPES
from tomocam.models import cnn1, cnn2

DTYPES = {"float32": None, **{name: getattr(torch, dtype) for name, dtype in AUTOCAST_DTYPES.items()}}
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last_3d}


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
            a, g = kept["a"].detach().float(), kept["g"].float()
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


def measure(name: str, batch: int, dtype: str, layout: str, device: torch.device, repeats: int,
            loop_repeats: int, captum: bool) -> dict:
    """One row: seconds per batch (median of ``repeats``) of each variant, and the derived rates."""
    torch.manual_seed(0)
    fmt = LAYOUTS[layout]
    model = {"cnn1": cnn1, "cnn2": cnn2}[name]().to(device).eval().to(memory_format=fmt)
    x = torch.randn(batch, 1, 40, 40, 40, device=device).contiguous(memory_format=fmt)  # (n, 1, 40, 40, 40)
    layer = model.default_cam_layer
    cast = DTYPES[dtype]

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=cast) if cast is not None else contextlib.nullcontext()

    def forward() -> None:
        with torch.no_grad(), autocast():
            model(x)

    def tomocam_all() -> None:
        tomocam.compute_cams(model, x, layer, autocast=cast)

    def plain_vjp() -> None:
        with mock.patch.object(cam_module, "_head_linear", return_value=None):
            tomocam.compute_cams(model, x, layer, autocast=cast)

    def loop() -> None:
        with autocast():
            per_class_loop(model, x, layer)

    def captum_all() -> None:
        with autocast():
            captum_loop(model, x, layer)

    for fn in (forward, tomocam_all, plain_vjp):  # warm-up (cuDNN picks its kernels here)
        fn()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: dict[str, list[float]] = {"forward": [], "tomocam": [], "plain": []}
    for _ in range(repeats):  # interleaved so that load changes hit every variant alike
        times["forward"].append(timed(forward, device))
        times["tomocam"].append(timed(tomocam_all, device))
        times["plain"].append(timed(plain_vjp, device))
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    med = {k: statistics.median(v) for k, v in times.items()}
    loop_s = min(timed(loop, device) for _ in range(loop_repeats)) if loop_repeats else None
    captum_s = min(timed(captum_all, device) for _ in range(max(1, loop_repeats))) if captum else None
    return {
        "model": name, "batch": batch, "dtype": dtype, "layout": layout, "device": str(device),
        "forward_s": med["forward"], "tomocam_s": med["tomocam"], "plain_vjp_s": med["plain"],
        "loop_s": loop_s, "captum_s": captum_s,
        "forward_tiles_per_s": batch / med["forward"], "tomocam_tiles_per_s": batch / med["tomocam"],
        "ratio": med["tomocam"] / med["forward"], "plain_vjp_ratio": med["plain"] / med["forward"],
        "loop_ratio": loop_s / med["forward"] if loop_s else None,
        "captum_ratio": captum_s / med["forward"] if captum_s else None,
        "speedup_vs_loop": loop_s / med["tomocam"] if loop_s else None,
        "peak_gpu_mib": peak,
    }


def _fmt(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-repeats", type=int, default=1, help="repeats of the slow per-class loops (0: skip)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--models", nargs="+", default=["cnn1", "cnn2"], choices=["cnn1", "cnn2"])
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=list(DTYPES))
    parser.add_argument("--layout", nargs="+", default=["contiguous"], choices=list(LAYOUTS))
    parser.add_argument("--json", help="append one JSON line per row to this file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    captum = args.loop_repeats > 0 and importlib.util.find_spec("captum") is not None
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device={device} ({card}) torch={torch.__version__} threads={torch.get_num_threads()} "
          f"captum={'yes' if captum else 'not installed or skipped'}")
    header = (f"{'model':6} {'layout':13} {'dtype':7} {'batch':>5} {'forward tiles/s':>15} "
              f"{'all-class tiles/s':>17} {'ratio':>6} {'plain VJP ratio':>15} {'loop ratio':>10} "
              f"{'captum ratio':>12} {'speed-up vs loop':>16} {'peak GPU MiB':>12}")
    print(header)
    print("-" * len(header), flush=True)
    for name, layout, dtype, batch in itertools.product(args.models, args.layout, args.dtype, args.batch):
        row = measure(name, batch, dtype, layout, device, args.repeats, args.loop_repeats, captum)
        row["card"] = card
        print(f"{name:6} {layout:13} {dtype:7} {batch:>5} {row['forward_tiles_per_s']:15.1f} "
              f"{row['tomocam_tiles_per_s']:17.1f} {row['ratio']:6.2f} {row['plain_vjp_ratio']:15.2f} "
              f"{_fmt(row['loop_ratio'], '10.1f')} {_fmt(row['captum_ratio'], '12.1f')} "
              f"{_fmt(row['speedup_vs_loop'], '16.1f')} {_fmt(row['peak_gpu_mib'], '12.0f')}", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
