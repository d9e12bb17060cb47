"""The paper's Table 1 for one model on one dataset: accuracy and the sum-to-score metrics of Grad-CAM and
Respond-CAM (L1 error and Kendall's tau, mean +- std over the evaluated boxes), at one layer.

By default the boxes are the model's own test split, rebuilt from the split seed in the checkpoint's provenance;
that needs the very dataset the model was trained on (checked by a hash of its labels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tomocam.errors import ClassError, InputError
from tomocam.evaluate.splits import labels_digest, load_inputs, rebuild_split
from tomocam.models import ModelMeta
from tomocam.simulate.dataset import Dataset

SPLITS = ("test", "all")


def evaluation_indices(meta: ModelMeta, dataset: Dataset, split: str) -> np.ndarray:
    """Indices of the boxes to evaluate: the model's test split, or every box."""
    if split == "all":
        return np.arange(len(dataset))
    if split != "test":
        raise InputError(f"unknown split {split!r}; expected one of {SPLITS}")
    prov = meta.provenance
    if "split" not in prov or "labels_sha256" not in prov:
        raise InputError("the checkpoint records no training split: evaluate with --split all")
    if prov["labels_sha256"] != labels_digest(dataset.labels):
        raise InputError(
            f"dataset '{dataset.path}' is not the one the model was trained on ({prov.get('dataset')}), so its "
            "test split is unknown: use that dataset, or --split all"
        )
    return rebuild_split(dataset, prov["split"]).test


def evaluate_model(
    model: nn.Module,
    meta: ModelMeta,
    dataset: Dataset,
    *,
    layer: str | None = None,
    split: str = "test",
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Table 1 figures for ``model`` on ``dataset``: a JSON-friendly dict.

    Keys: ``layer``, ``n``, ``accuracy``, ``score_abs_mean`` (mean ``|y_c|``: the scale the L1 errors compare
    with), and per method (``"gradcam"``, ``"respond"``) ``l1_mean``, ``l1_std``,
    ``tau_mean``, ``tau_std`` and ``tau_undefined`` (boxes whose tau is undefined, e.g. constant map sums; left out
    of the tau statistics). Maps are taken for every class, the scores being the pre-softmax logits.

    ``identity`` checks ``G_c = R_c - Z * sum_l Cov_s(A_l, dy_c/dA_l)`` (:mod:`tomocam.explain.identity`) on every
    box and class, with the covariance term computed from the full gradients: ``covariance_abs_mean`` (mean
    ``|Z * sum Cov|``, what Grad-CAM's sum drops), ``residual_max`` (max ``|G + Z * sum Cov - R|``, float rounding
    and Respond-CAM's eps) and ``residual_max_rel`` (that over ``score_abs_mean``).
    """
    from tomocam.explain import compute_cams
    from tomocam.explain.identity import covariance_term
    from tomocam.explain.metrics import kendall_tau, map_sums, sum_to_score_l1

    if list(meta.classes) != list(dataset.classes):
        raise ClassError(f"model classes {meta.classes} differ from dataset '{dataset.path}' classes {dataset.classes}")
    if meta.input_size != dataset.box:
        raise InputError(f"model input size {meta.input_size} differs from dataset box {dataset.box}")
    layer = layer or meta.cam_layer
    idx = evaluation_indices(meta, dataset, split)
    if len(idx) == 0:
        raise InputError(f"the {split} split of dataset '{dataset.path}' is empty")
    model = model.to(device).eval()
    methods = ("gradcam", "respond")
    l1: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    tau: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    correct, score_scale, covariance, residual = 0, [], [], []
    for start in range(0, len(idx), batch_size):
        chunk = idx[start:start + batch_size]
        x = load_inputs(dataset, chunk, normalisation=meta.normalisation).to(device)
        res = compute_cams(model, x, layer, methods=methods)
        correct += int((res.logits.argmax(1).cpu().numpy() == dataset.labels[chunk]).sum())
        score_scale.append(res.logits.abs().mean(1).double().cpu().numpy())
        for m in methods:
            l1[m].append(sum_to_score_l1(res.maps[m], res.logits))
            tau[m].append(kendall_tau(res.maps[m], res.logits))
        cov = covariance_term(model, x, layer).cpu().numpy()
        covariance.append(np.abs(cov).mean(1))
        residual.append(np.abs(map_sums(res.maps["gradcam"]) + cov - map_sums(res.maps["respond"])).max(1))
    out: dict[str, Any] = {"layer": layer, "split": split, "n": int(len(idx)), "accuracy": correct / len(idx),
                           "score_abs_mean": float(np.concatenate(score_scale).mean())}
    for m in methods:
        e, t = np.concatenate(l1[m]), np.concatenate(tau[m])
        ok = np.isfinite(t)
        out[m] = {
            "l1_mean": float(e.mean()), "l1_std": float(e.std()),
            "tau_mean": float(t[ok].mean()) if ok.any() else float("nan"),
            "tau_std": float(t[ok].std()) if ok.any() else float("nan"),
            "tau_undefined": int((~ok).sum()),
        }
    worst = float(np.concatenate(residual).max())
    out["identity"] = {"covariance_abs_mean": float(np.concatenate(covariance).mean()), "residual_max": worst,
                       "residual_max_rel": worst / out["score_abs_mean"] if out["score_abs_mean"] > 0 else float("nan")}
    return out
