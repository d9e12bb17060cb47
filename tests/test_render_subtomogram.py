"""The paper's Fig. 3 and Fig. 4 for one subtomogram: panels, and overlays equal to the CAM core's maps."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tomocam import compute_cams, load_checkpoint, resize_maps, save_checkpoint
from tomocam.cli.main import app
from tomocam.errors import ClassError, InputError
from tomocam.models import cnn1, cnn2, normalise
from tomocam.render.subtomogram import (
    explain_layers,
    explain_subtomogram,
    fig4_layers,
    read_subtomogram,
    render_fig3,
    render_fig4,
)

SIZE = 16


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(cnn1(num_classes=3, input_size=SIZE, fc_width=16), path, classes=["a", "b", "c"],
                    input_size=SIZE, voxel_size=10.0)
    return path


@pytest.fixture(scope="module")
def volume():
    g = np.indices((SIZE,) * 3).astype(np.float32)
    blob = np.exp(-((g[0] - 8) ** 2 + (g[1] - 6) ** 2 + (g[2] - 9) ** 2) / 8)
    return (blob + 0.1 * np.random.default_rng(0).standard_normal((SIZE,) * 3)).astype(np.float32)


def reference_map(model, meta, volume, layer, method, c):
    """The CAM core's map for class ``c`` on the input grid, computed independently of the figure code."""
    x = normalise(torch.from_numpy(volume)[None, None], meta.normalisation)
    maps = compute_cams(model, x, layer).maps[method]
    return resize_maps(maps, volume.shape)[0, c].numpy()


def test_fig3_panels_and_overlays_equal_the_core_maps(checkpoint, volume):
    model, meta = load_checkpoint(checkpoint)
    e = explain_subtomogram(model, meta, volume, class_name="c")
    fig = render_fig3(e)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("subtomogram · c (p=")
    assert "Respond-CAM · c\nfeatures.pool2" in titles and "Grad-CAM · c\nfeatures.pool2" in titles
    overlays = [ax for ax in fig.axes if len(ax.images) == 2]
    assert len(overlays) == 2
    for ax, method in zip(overlays, ("respond", "gradcam")):
        data = np.asarray(ax.images[-1].get_array())
        expected = reference_map(model, meta, volume, "features.pool2", method, 2)[SIZE // 2]
        np.testing.assert_allclose(data, expected, rtol=1e-5, atol=1e-9)
        assert np.abs(data).max() > 0
        assert ax.images[-1].norm.vcenter == 0
    iso = [ax for ax in fig.axes if ax.name == "3d"]
    assert len(iso) == 3 and all(ax.collections for ax in iso)  # each shows an isosurface


def test_default_class_is_the_prediction(checkpoint, volume):
    model, meta = load_checkpoint(checkpoint)
    with torch.no_grad():
        logits = model(normalise(torch.from_numpy(volume)[None, None], meta.normalisation))[0]
    e = explain_subtomogram(model, meta, volume)
    assert e.class_name == meta.classes[int(logits.argmax())]
    assert e.score == pytest.approx(float(logits.max()), rel=1e-5)
    with pytest.raises(ClassError, match="'zzz'"):
        explain_subtomogram(model, meta, volume, class_name="zzz")


def test_fig4_has_every_conv_and_pool_layer_in_order(checkpoint, volume):
    model, meta = load_checkpoint(checkpoint)
    names = fig4_layers(model)
    assert names == [f"features.{n}" for n in ("conv1", "conv2", "pool1", "conv3", "conv4", "pool2")]
    assert fig4_layers(cnn2(num_classes=2, input_size=16, fc_width=8))[0] == "features.avgpool"
    explanations = explain_layers(model, meta, volume, class_name="b")
    fig = render_fig4(explanations)
    slices = [ax for ax in fig.axes if len(ax.images) == 2]
    assert [ax.get_title().split("\n")[0] for ax in slices] == names
    for ax, name in zip(slices, names):
        expected = reference_map(model, meta, volume, name, "respond", 1)[SIZE // 2]
        np.testing.assert_allclose(np.asarray(ax.images[-1].get_array()), expected, rtol=1e-5, atol=1e-9)


def test_subtomogram_of_the_wrong_size_is_an_input_error(tmp_path):
    path = tmp_path / "s.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((8, 8, 8), np.float32))
    with pytest.raises(InputError, match=r"shape \(8, 8, 8\).*\(16, 16, 16\)"):
        read_subtomogram(path, SIZE)


def test_cli_renders_fig3_and_fig4(checkpoint, volume, tmp_path):
    path = tmp_path / "particle.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(volume)
    result = CliRunner().invoke(app, ["render", str(path), "--model", str(checkpoint), "--dpi", "40"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["particle_fig3.png", "particle_fig4.png"]
    again = CliRunner().invoke(app, ["render", str(path), "--model", str(checkpoint)])
    assert again.exit_code != 0 and "exists already" in str(again.exception)
