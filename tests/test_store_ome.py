"""The explain store is valid OME-Zarr 0.5 and napari places it on the tomogram.

Checked by clients nobody here wrote: every group that claims OME metadata (``respond``, ``gradcam``,
``labels``, ``labels/segmentation``; the root, only if it ever claims any) must validate with ``ome-zarr-models``,
and napari's OME-Zarr plugin, read headless through its ``napari_get_reader`` (no viewer, no Qt), must put every
level-0 sample of every layer at the world position of the voxel it stands for. For the heatmaps that is an
exact oracle: the stored sample at napari's position equals the full-grid field (recomputed from ``tiles/``) at
that voxel. Versions used: napari 0.9.2, napari-ome-zarr 0.10.0, ome-zarr-models 1.7 (zarr 3.1).

napari-ome-zarr 0.10 reads only the first coordinate transformation of level 0 (the scale) and drops the
translation; the store therefore samples level 0 from voxel 0, so no translation is needed there
(:mod:`tomocam.store.ome`). Coarser levels keep the specification's translations, which ome-zarr-models checks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc

import tomocam
from tomocam.models import cnn2
from tomocam.pipeline import ExplainConfig, explain_tomogram
from tomocam.simulate import shape_names
from tomocam.store import open_store
from tomocam.store.grid import level_grid

ome_zarr_models_v05 = pytest.importorskip("ome_zarr_models.v05")
napari_ome_zarr = pytest.importorskip("napari_ome_zarr")
napari_layers = pytest.importorskip("napari.layers")
napari_stack_utils = pytest.importorskip("napari.layers.utils.stack_utils")


@pytest.fixture(scope="module")
def stores(client, tmp_path_factory):
    """A demo-like store (an untrained CNN-2 of the built-in classes, both methods, the native step of 4 voxels)
    and one with every option (both methods, float16, ``--heatmap-step 1``, a 5 A tomogram for a 10 A model;
    small chunks, so that it has three pyramid levels)."""
    d = tmp_path_factory.mktemp("ome")
    torch.manual_seed(0)
    names = ["background", *shape_names()]
    demo_model = tomocam.save_checkpoint(cnn2(num_classes=len(names), input_size=32, fc_width=8), d / "cnn2.pt",
                                         classes=names, input_size=32, voxel_size=10.0)
    volume, _ = particles_volume((40, 48, 44), n=6, seed=2)
    demo = ExplainConfig(tomogram=str(write_mrc(d / "demo.mrc", volume)), output=str(d / "demo.zarr"),
                         model=str(demo_model), methods=("respond", "gradcam"))
    every = ExplainConfig(tomogram=str(write_mrc(d / "fine.mrc", volume, voxel_size=5.0)),
                          output=str(d / "every.zarr"), model=str(matched_filter_checkpoint(d / "mf.pt")),
                          methods=("respond", "gradcam"), heatmap_dtype="float16", heatmap_step=1, block=2,
                          chunk=16)
    out = {}
    for name, config in (("demo", demo), ("every", every)):
        out[name] = open_store(explain_tomogram(config, client=client).store)
    assert max(out["demo"].sampling.step) > 1 and out["every"].sampling.step == (1, 1, 1)
    assert out["every"].heatmap("respond").dtype == np.float16 and out["every"].voxel_size == (5.0, 5.0, 5.0)
    labels = zarr.open_group(out["every"].path, mode="r")["labels/segmentation"]
    assert out["every"].n_levels == 3 and len(list(labels.array_keys())) == 3
    return out


GROUPS = ["respond", "gradcam", "labels/segmentation"]


@pytest.mark.parametrize("which", ["demo", "every"])
def test_every_ome_group_validates_with_ome_zarr_models(stores, which):
    store = stores[which]
    root = zarr.open_group(store.path, mode="r")
    for method in store.methods:
        image = ome_zarr_models_v05.Image.from_zarr(root[method])
        ms = image.attributes.ome.multiscales[0]
        assert [d.path for d in ms.datasets] == [str(n) for n in range(store.n_levels)]
    labels = ome_zarr_models_v05.Labels.from_zarr(root["labels"])
    assert labels.attributes.ome.labels == ["segmentation"]
    segmentation = ome_zarr_models_v05.ImageLabel.from_zarr(root["labels/segmentation"])
    assert {p.label_value for p in segmentation.attributes.ome.image_label.properties} == set(
        range(1, len(store.classes) + 1))
    # the root is a tomocam store, not an OME-Zarr image; if it ever claims OME metadata it must validate too
    if "ome" in root.attrs:
        ome_zarr_models_v05.Image.from_zarr(root)
    # every multiscale array names its dimensions as the axes do
    for group in [*store.methods, "labels/segmentation"]:
        axes = [a["name"] for a in root[group].attrs["ome"]["multiscales"][0]["axes"]]
        for level in root[group].array_keys():
            assert list(root[group][level].metadata.dimension_names) == axes


def _napari_layers(path: str) -> list[tuple[list, dict, str]]:
    reader = napari_ome_zarr.napari_get_reader(path)
    assert reader is not None, f"napari-ome-zarr cannot read {path}"
    return reader(path)


def _world(layer_data: tuple[list, dict, str], index: np.ndarray) -> np.ndarray:
    """World positions ``(n, 3)`` napari gives the level-0 data indices ``index`` ``(n, 3)`` of a layer the plugin
    returned, made into napari layers as its viewer does (an image split into one layer per channel; every
    channel must be placed alike)."""
    data, kwargs, kind = layer_data
    if "channel_axis" in kwargs:
        kwargs = dict(kwargs)
        parts = napari_stack_utils.split_channels(data, kwargs.pop("channel_axis"), **kwargs)
    else:
        parts = [(data, kwargs, kind)]
    layers = [napari_layers.Layer.create(*part) for part in parts]
    worlds = np.array([[layer.data_to_world(i) for i in index] for layer in layers])  # (layers, n, 3)
    assert all(layer.ndim == 3 for layer in layers) and (worlds == worlds[0]).all()
    return worlds[0]


@pytest.mark.parametrize("which", ["demo", "every"])
def test_napari_places_every_heatmap_sample_on_the_voxel_whose_field_it_holds(stores, which):
    store = stores[which]
    v = np.asarray(store.voxel_size)
    rng = np.random.default_rng(0)
    for method in store.methods:
        layers = _napari_layers(f"{store.path}/{method}")
        assert len(layers) == 1 and layers[0][2] == "image"
        assert layers[0][1]["name"] == [f"{method}: {c}" for c in store.classes]
        level0 = store.heatmap(method, 0)
        samples = np.array([rng.integers(0, n, 12) for n in level0.shape[1:]]).T  # (12, 3) sample indices
        samples = np.vstack([samples, np.zeros(3, int), np.array(level0.shape[1:]) - 1])
        voxels = _world(layers[0], samples) / v  # the tomogram in napari: voxel i at i * voxel size
        np.testing.assert_allclose(voxels, np.round(voxels), atol=1e-9)
        voxels = np.round(voxels).astype(int)
        assert (voxels >= 0).all() and (voxels < np.array(store.shape)).all()
        full = store.full_grid(method).compute()  # (k, z, y, x) float32, exact from tiles/
        stored = np.asarray(level0[...], np.float32)[(slice(None), *samples.T)]  # (k, n)
        field = full[(slice(None), *voxels.T)]
        tol = 2e-3 * np.abs(full).max() if level0.dtype == np.float16 else 1e-5 * np.abs(full).max()
        np.testing.assert_allclose(stored, field, rtol=0, atol=tol)
        # the field differs from voxel to voxel: half a step off would not pass
        if max(store.sampling.step) > 1:
            shifted = full[(slice(None), *(np.minimum(voxels + 2, np.array(store.shape) - 1)).T)]
            assert np.abs(stored - shifted).max() > 10 * tol
        # coarser levels: the specification's placement (means of 2**n samples), as ome-zarr-models read it
        for level in range(1, store.n_levels):
            grid = level_grid(store, method, level)
            first = np.asarray(store.sampling.step) * (2**level - 1) / 2 * v
            np.testing.assert_allclose(grid.origin, first)


@pytest.mark.parametrize("which", ["demo", "every"])
def test_napari_places_the_label_image_on_the_tomogram_grid(stores, which):
    store = stores[which]
    layers = _napari_layers(f"{store.path}/labels/segmentation")
    assert [kind for _, _, kind in layers] == ["labels"]
    data, kwargs, _ = layers[0]
    np.testing.assert_array_equal(np.asarray(data[0]), store.labels()[...])
    index = np.array([[0, 0, 0], [1, 2, 3], [n - 1 for n in store.shape]])
    np.testing.assert_allclose(_world(layers[0], index), index * np.asarray(store.voxel_size))
    # coarser label levels keep voxel (2**n - 1) // 2 of each 2**n: their metadata says so
    labels = zarr.open_group(store.path, mode="r")["labels/segmentation"]
    for level in range(1, len(list(labels.array_keys()))):
        f = 2**level
        np.testing.assert_array_equal(labels[str(level)][...],
                                      labels["0"][tuple(slice((f - 1) // 2, (f - 1) // 2 + (n >> level) * f, f)
                                                        for n in store.shape)])
        grid = level_grid(store, "labels/segmentation", level)
        np.testing.assert_allclose(grid.origin, (f - 1) // 2 * np.asarray(store.voxel_size))
