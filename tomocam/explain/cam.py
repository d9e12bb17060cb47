"""All-class Respond-CAM and Grad-CAM in about the cost of one forward pass.

For a model ``f`` whose layer ``A`` has output ``a`` of shape ``(n, l, *s)`` (``l`` channels, ``s`` spatial
axes, 2-D or 3-D alike) and logits ``y`` of shape ``(n, k)``:

- Respond-CAM (Zhao et al. 2018, eq. 1-2):
  ``alpha[n, k, l] = sum_s(a * dy_k/da) / (sum_s a + eps)``, ``L[n, k, s] = sum_l alpha[n, k, l] * a[n, l, s]``.
- Grad-CAM (Selvaraju et al.): ``alpha[n, k, l] = mean_s(dy_k/da)``, same combination.

Maps are signed and in score units: no ReLU, no normalisation, no resizing here (see :mod:`tomocam.explain.resize`).

Every class comes from ONE forward pass. The gradients of all ``k`` logits are one batched vector-Jacobian product
(``torch.autograd.grad(..., is_grads_batched=True)``) that traverses only the part of the graph after ``A``.
When ``A`` feeds the network only through ``flatten -> Linear`` (CNN-1, CNN-2, most classifiers), both weightings
are reduced through that first Linear layer instead: with ``h = W flatten(a) + b`` and ``delta[k] = dy_k/dh``,

    sum_s a * dy_k/da  = delta[k] @ P,    P[j, l]  = sum_s W[j, l, s] a[l, s]
    mean_s dy_k/da     = delta[k] @ Wm,   Wm[j, l] = mean_s W[j, l, s]

so the ``k`` full gradients (``k x l x s`` numbers per sample) are never materialised; the batched VJP only runs
through the small head after ``h``. Both paths give the same numbers (tests check it).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from tomocam.classes import class_indices
from tomocam.errors import LayerError
from tomocam.explain.methods import METHODS

DEFAULT_EPS = 1e-7
# Upper bound on the elements of one batched gradient (k x n x l x s) on the generic path; classes are
# processed in chunks above it so that shallow layers (large ``s``) stay within memory.
_MAX_GRAD_ELEMENTS = 2**27


@dataclass(frozen=True)
class CamResult:
    """What :func:`compute_cams` returns.

    Attributes:
        logits: ``(n, k)`` float32 pre-softmax scores of the returned classes.
        maps: method name (``"respond"``, ``"gradcam"``) -> ``(n, k, *s)`` float32 maps at the layer's resolution,
            signed, in score units.
        classes: the ``k`` class indices, in the order of the ``k`` axis.
        layer: the dotted name of the explained layer.
    """

    logits: Tensor
    maps: dict[str, Tensor]
    classes: tuple[int, ...]
    layer: str


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the sub-module called ``name`` in ``model.named_modules()``.

    Raises:
        LayerError: the name is unknown; the message lists the closest names.
    """
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4) or names[-5:]
    raise LayerError(f"unknown layer {name!r}; closest layers: {', '.join(close)} (see 'tomocam info MODEL')")


@contextlib.contextmanager
def _restored_model_state(model: nn.Module) -> Iterator[None]:
    """Leave ``model``'s parameters' ``requires_grad`` and ``.grad`` as found, whatever happens inside."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)  # gradients w.r.t. the activations only: cheaper, and .grad stays untouched
        yield
    finally:
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad


@dataclass
class _Capture:
    """Tensors seen during the forward pass."""

    activation: Tensor | None = None  # a: (n, l, *s), the layer output, detached leaf that requires grad
    linear_calls: list[tuple[nn.Linear, Tensor, Tensor]] = field(default_factory=list)  # (module, input, output)


@contextlib.contextmanager
def _capturing(model: nn.Module, layer: nn.Module) -> Iterator[_Capture]:
    """Hook ``layer`` and every Linear module; remove all hooks on exit, also on error.

    The layer's output is replaced by a fresh leaf tensor that requires grad, so that gradients stop there (the
    part of the graph before the layer is never traversed). The network continues on copies of the captured
    tensors, so in-place operations after them (``ReLU(inplace=True)``) cannot change what was captured. The
    layer's copy is in contiguous (NCDHW) memory whatever the model's memory format: a channels-last activation
    (GPU workers run models in ``channels_last_3d``) would otherwise be copied by ``flatten``, hiding from
    :func:`_head_linear` that the Linear layer reads the activation itself and costing the Linear reduction.
    """
    capture = _Capture()

    def on_layer(_module: nn.Module, _inputs: tuple, output: Tensor) -> Tensor:
        if not isinstance(output, Tensor):
            raise LayerError(f"layer output is a {type(output).__name__}, not a tensor; choose another layer")
        if capture.activation is not None:
            raise LayerError("the layer is called more than once per forward pass; choose a layer used once")
        leaf = output.detach().requires_grad_(True)
        capture.activation = leaf
        return leaf.clone(memory_format=torch.contiguous_format)

    def on_linear(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
        assert isinstance(module, nn.Linear)  # registered on Linear modules only
        capture.linear_calls.append((module, inputs[0], output))
        return output.clone()  # an in-place activation next (ReLU(inplace=True)) must not touch ``output``

    handles = [layer.register_forward_hook(on_layer)]
    try:
        for module in model.modules():
            if isinstance(module, nn.Linear):
                handles.append(module.register_forward_hook(on_linear))
        yield capture
    finally:
        for handle in handles:
            handle.remove()


def _reaches(root: torch.autograd.graph.Node | None, target: Tensor, stop: torch.autograd.graph.Node) -> bool:
    """Does the autograd graph below ``root`` reach the leaf ``target`` other than through ``stop``?"""
    seen: set[torch.autograd.graph.Node] = set()
    stack: list[torch.autograd.graph.Node | None] = [root]
    while stack:
        node = stack.pop()
        if node is None or node in seen or node is stop:
            continue
        seen.add(node)
        if getattr(node, "variable", None) is target:
            return True
        stack.extend(fn for fn, _ in node.next_functions)
    return False


def _head_linear(capture: _Capture, logits: Tensor) -> tuple[nn.Linear, Tensor] | None:
    """The Linear layer through which alone the activation reaches the logits, with its output; else None.

    It qualifies when its input is the activation copy flattened (a view of it, nothing in between but
    reshapes or identity) and the autograd graph from the logits reaches the activation only through it.
    """
    a = capture.activation
    if a is None:
        return None
    n = a.shape[0]
    for module, inp, out in capture.linear_calls:
        stop = out.grad_fn
        if inp.dim() != 2 or inp.shape != (n, a[0].numel()) or stop is None:
            continue
        base = inp._base if inp._base is not None else inp
        # The copy made by the layer hook is the only tensor whose grad_fn leads straight to the leaf ``a``.
        parent = base.grad_fn
        if parent is None or not any(fn is not None and getattr(fn, "variable", None) is a
                                     for fn, _ in parent.next_functions):
            continue
        if not inp.is_contiguous():
            continue
        if _reaches(logits.grad_fn, a, stop=stop):
            return None
        return module, out
    return None


@functools.lru_cache(maxsize=64)
def _index_tensor(values: tuple[int, ...], device: torch.device) -> Tensor:
    """``values`` as a long tensor on ``device``, made once and only read afterwards: building it from a list
    copies it from the host, and on a GPU that copy waits for all queued work, twice per batch otherwise."""
    return torch.tensor(values, dtype=torch.long, device=device)


def _one_hot_directions(n: int, k_total: int, classes: Sequence[int], like: Tensor) -> Tensor:
    """``(k, n, k_total)`` batched grad_outputs selecting each requested class's logit."""
    eye = torch.zeros(len(classes), n, k_total, dtype=like.dtype, device=like.device)
    rows = torch.arange(len(classes), device=like.device)
    eye[rows, :, _index_tensor(tuple(classes), like.device)] = 1  # eye[i, :, classes[i]], one kernel
    return eye


def _accumulation_dtype(t: Tensor) -> torch.dtype:
    """float32 for float32 and lower precisions (autocast), float64 for float64 models."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _weights_through_linear(
    a: Tensor, logits: Tensor, linear: nn.Linear, hidden: Tensor, classes: Sequence[int], methods: Sequence[str],
    eps: float,
) -> dict[str, Tensor]:
    """Channel weights ``alpha (n, k, l)`` per method, reduced through the first Linear layer."""
    n, l = a.shape[:2]
    directions = _one_hot_directions(n, logits.shape[1], classes, logits)
    (delta,) = torch.autograd.grad(logits, hidden, directions, is_grads_batched=True, retain_graph=False)
    acc = _accumulation_dtype(a)
    delta = delta.to(acc).transpose(0, 1)  # (n, k, j)
    w = linear.weight.detach().to(acc).reshape(linear.out_features, l, -1)  # (j, l, s)
    a_flat = a.detach().to(acc).reshape(n, l, -1)  # (n, l, s)
    alphas = {}
    if "respond" in methods:
        p = torch.einsum("jls,nls->njl", w, a_flat)  # (n, j, l)
        numerator = torch.bmm(delta, p)  # (n, k, l)
        alphas["respond"] = numerator / (a_flat.sum(-1).unsqueeze(1) + eps)
    if "gradcam" in methods:
        alphas["gradcam"] = delta @ w.mean(-1)  # (n, k, l)
    return alphas


def _weights_generic(
    a: Tensor, logits: Tensor, classes: Sequence[int], methods: Sequence[str], eps: float
) -> dict[str, Tensor]:
    """Channel weights ``alpha (n, k, l)`` per method from batched gradients ``dy_k/da``, classes in chunks."""
    n, l = a.shape[:2]
    acc = _accumulation_dtype(a)
    a_flat = a.detach().to(acc).reshape(n, l, -1)  # (n, l, s)
    chunk = max(1, _MAX_GRAD_ELEMENTS // max(1, a.numel()))
    parts: dict[str, list[Tensor]] = {m: [] for m in methods}
    for start in range(0, len(classes), chunk):
        part = classes[start:start + chunk]
        directions = _one_hot_directions(n, logits.shape[1], part, logits)
        last = start + chunk >= len(classes)
        (grads,) = torch.autograd.grad(logits, a, directions, is_grads_batched=True, retain_graph=not last)
        grads = grads.to(acc).reshape(len(part), n, l, -1).transpose(0, 1)  # (n, k, l, s)
        if "respond" in methods:
            parts["respond"].append((grads * a_flat.unsqueeze(1)).sum(-1) / (a_flat.sum(-1).unsqueeze(1) + eps))
        if "gradcam" in methods:
            parts["gradcam"].append(grads.mean(-1))
    return {m: torch.cat(p, dim=1) for m, p in parts.items()}


def compute_cams(
    model: nn.Module,
    x: Tensor,
    layer: str,
    methods: Sequence[str] = METHODS,
    classes: Sequence[int] | None = None,
    eps: float = DEFAULT_EPS,
    autocast: torch.dtype | None = None,
) -> CamResult:
    """Respond-CAM and/or Grad-CAM maps of every requested class at ``layer``, from one forward pass.

    Args:
        model: any classifier returning logits ``(n, k_total)``. Its train/eval mode, parameters'
            ``requires_grad`` and ``.grad`` are left as found; every hook added is removed, also on error.
        x: input ``(n, c, h, w)`` or ``(n, c, d, h, w)`` on the model's device.
        layer: dotted module name as ``model.named_modules()`` lists it; its output ``(n, l, *s)`` must have
            at least one spatial axis.
        methods: any of ``"respond"``, ``"gradcam"``.
        classes: class indices to explain, in this order; ``None`` means every class.
        eps: Respond-CAM's stabiliser in ``sum_s a + eps``.
        autocast: run the forward pass under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``); the
            weights and maps are still accumulated in float32.

    Returns:
        :class:`CamResult` with logits ``(n, k)`` and maps ``(n, k, *s)``, float32 (float64 for a float64
        model).

    Raises:
        LayerError: unknown layer, a layer output without spatial axes, or a layer the logits do not depend on.
        ClassError: a class index out of range.
        ValueError: an unknown method.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown CAM method {unknown[0] if unknown else None!r}; expected one of {METHODS}")
    target = find_layer(model, layer)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.enable_grad())
        stack.enter_context(_restored_model_state(model))
        capture = stack.enter_context(_capturing(model, target))
        if autocast is not None:
            stack.enter_context(torch.autocast(device_type=x.device.type, dtype=autocast))
        logits = model(x)
        a = capture.activation
        if a is None:
            raise LayerError(f"layer {layer!r} was not called in the forward pass")
        if a.dim() < 3:
            raise LayerError(
                f"layer {layer!r} outputs shape {tuple(a.shape)} with no spatial axes; "
                "choose a convolution or pooling layer (see 'tomocam info MODEL')"
            )
        if logits.dim() != 2:
            raise LayerError(f"the model returns shape {tuple(logits.shape)}; expected logits (n, classes)")
        wanted = class_indices(classes, [str(i) for i in range(logits.shape[1])])
        if logits.grad_fn is None:
            raise LayerError(f"the model's output does not depend on layer {layer!r}")
        head = _head_linear(capture, logits)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if head is not None:
                alphas = _weights_through_linear(a, logits, head[0], head[1], wanted, methods, eps)
            else:
                alphas = _weights_generic(a, logits, wanted, methods, eps)
            a_flat = a.detach().to(_accumulation_dtype(a)).reshape(a.shape[0], a.shape[1], -1)  # (n, l, s)
            maps = {
                m: torch.bmm(alphas[m], a_flat).reshape(a.shape[0], len(wanted), *a.shape[2:])  # (n, k, *s)
                for m in methods
            }
    index = _index_tensor(tuple(wanted), logits.device)
    return CamResult(
        logits=logits.detach().to(_accumulation_dtype(a)).index_select(1, index), maps=maps, classes=wanted, layer=layer
    )
