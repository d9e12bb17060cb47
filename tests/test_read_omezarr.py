"""OME-Zarr tomograms (OME-NGFF 0.4 on zarr v2, 0.5 on zarr v3) and copick projects as input.

Images are written here by zarr-python 3 directly and by the ``ome-zarr`` library (an independent writer). They
must read back voxel for voxel with the voxel size of their ``scale``, lazily (a slab decodes only its chunks),
and explain to exactly the heatmaps of the same volume written as MRC; bad inputs give one line.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from explain_models import matched_filter_checkpoint, particles_volume, write_mrc

from tomocam.cli.main import main
from tomocam.errors import InputError
from tomocam.pipeline import ExplainConfig, explain_tomogram
from tomocam.read import CopickProject, locate_tomogram, open_tomogram
from tomocam.store import open_store
from tomocam.tile.cut import read_slab
from tomocam.tile.grid import TileGrid, make_blocks

# ome-zarr's write_image builds its deprecated default Scaler even when given scale_factors
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")

SHAPE = (20, 24, 28)
VOXEL = 10.0


def volume(shape=SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def write_ngff(path: Path, vol: np.ndarray, version: str, *, voxel: float | tuple = VOXEL,
               unit: str | None = "angstrom", chunks=(8, 8, 8), axes: str = "zyx", levels: int = 2,
               group_scale: list[float] | None = None) -> Path:
    """An OME-NGFF ``version`` (0.4: zarr v2, 0.5: zarr v3) image of ``vol`` with axes ``axes`` (the array
    already in that order), level ``n`` the ``2**n`` subsampling of level 0, written with zarr-python alone."""
    voxel = (voxel,) * 3 if np.isscalar(voxel) else voxel
    fmt = 2 if version == "0.4" else 3
    root = zarr.open_group(path, mode="w", zarr_format=fmt)
    spatial = {a: v for a, v in zip("zyx", voxel)}
    datasets = []
    for n in range(levels):
        f = 2**n
        data = vol[tuple(slice(None, None, f) if a in "zyx" else slice(None) for a in axes)]
        root.create_array(str(n), data=np.ascontiguousarray(data), chunks=chunks[: data.ndim])
        scale = [spatial[a] * f if a in "zyx" else 1.0 for a in axes]
        datasets.append({"path": str(n), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    ax = [{"name": a, "type": "space" if a in "zyx" else "channel" if a == "c" else "time",
           **({"unit": unit} if unit and a in "zyx" else {})} for a in axes]
    ms = {"axes": ax, "datasets": datasets, "name": "tomogram"}
    if group_scale is not None:
        ms["coordinateTransformations"] = [{"type": "scale", "scale": group_scale}]
    if version == "0.4":
        root.attrs["multiscales"] = [{**ms, "version": "0.4"}]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    return path


def write_with_ome_zarr(path: Path, vol: np.ndarray, version: str) -> Path:
    """The same image written by the ``ome-zarr`` library (its own pyramid: y and x halved per level)."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    root = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    write_image(vol, root, axes="zyx", fmt=fmt, scale={a: VOXEL for a in "zyx"},
                axes_units={a: "angstrom" for a in "zyx"}, scale_factors=(2,), storage_options={"chunks": (8, 8, 8)})
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("writer", ["zarr", "ome-zarr"])
def test_image_reads_back_voxel_for_voxel_with_its_voxel_size(tmp_path, version, writer):
    vol = volume()
    path = tmp_path / "tomo.zarr"
    (write_ngff if writer == "zarr" else write_with_ome_zarr)(path, vol, version)
    zarr_format = json.loads((path / "zarr.json").read_text())["zarr_format"] if version == "0.5" else 2
    assert zarr_format == (3 if version == "0.5" else 2)
    tomo = open_tomogram(path)
    assert tomo.shape == SHAPE and tomo.voxel_size == (VOXEL,) * 3 and tomo.dtype == "float32"
    assert pickle.loads(pickle.dumps(tomo)) == tomo
    np.testing.assert_array_equal(np.asarray(tomo.array()), vol)
    np.testing.assert_array_equal(tomo.array()[3:9, 5, ::3], vol[3:9, 5, ::3])
    assert open_tomogram(tomo.path) == tomo  # the recorded path reopens the same level
    one = open_tomogram(path, level=1)
    assert one.path.endswith(("/1", "/s1"))
    expected = (VOXEL, 2 * VOXEL, 2 * VOXEL) if writer == "ome-zarr" else (2 * VOXEL,) * 3
    assert one.voxel_size == pytest.approx(expected)
    assert open_tomogram(path, voxel_size=7.5).voxel_size == (7.5, 7.5, 7.5)


def test_voxel_size_from_level_scale_times_multiscale_scale_in_angstrom(tmp_path):
    vol = volume()
    path = write_ngff(tmp_path / "nm.zarr", vol, "0.5", voxel=(1.0, 1.2, 1.2), unit="nanometer",
                      group_scale=[2.0, 2.0, 2.0])
    assert open_tomogram(path).voxel_size == pytest.approx((20.0, 24.0, 24.0))


def test_channel_axis_of_length_one_and_any_space_axis_order(tmp_path):
    vol = volume()
    xzy = np.ascontiguousarray(vol.transpose(2, 0, 1))[None]  # (c, x, z, y)
    path = write_ngff(tmp_path / "c.zarr", xzy, "0.5", axes="cxzy", voxel=(4.0, 5.0, 6.0), chunks=(1, 8, 8, 8),
                      levels=1)
    tomo = open_tomogram(path)
    assert tomo.shape == SHAPE and tomo.voxel_size == (4.0, 5.0, 6.0)  # stored as x, z, y: 6, 4, 5
    np.testing.assert_array_equal(tomo.array()[2:7, 3:11, 1:20], vol[2:7, 3:11, 1:20])
    np.testing.assert_array_equal(tomo.array()[4, 3:11, 7], vol[4, 3:11, 7])


def test_a_slab_decodes_only_the_chunks_it_touches(tmp_path):
    """Every chunk outside the block's slab is overwritten with garbage: the slab still reads exactly (so none
    of them was read), and reading the whole volume stops with one line naming the tomogram."""
    vol = volume((32, 32, 32))
    path = write_ngff(tmp_path / "t.zarr", vol, "0.4", chunks=(8, 8, 8), levels=1)
    tomo = open_tomogram(path)
    grid = TileGrid.build(tomo.shape, (12, 12, 12), (12, 12, 12))
    block = make_blocks(grid, 1)[0]  # the first tile: voxels [0, 12) per axis, chunks 0 and 1
    corrupted = 0
    for chunk in Path(tomo.path).rglob("*"):
        index = chunk.relative_to(tomo.path).as_posix().replace("/", ".").split(".")  # zarr v2: "z.y.x"
        if chunk.is_file() and not chunk.name.startswith(".") and max(int(i) for i in index) > 1:
            chunk.write_bytes(b"not a chunk")
            corrupted += 1
    assert corrupted == 4**3 - 2**3
    slab, origin = read_slab(tomo.array(), grid, block)
    assert origin == (0, 0, 0)
    np.testing.assert_array_equal(slab, vol[:12, :12, :12])
    with pytest.raises(InputError, match="chunk that cannot be read") as err:
        np.asarray(tomo.array())
    assert "\n" not in str(err.value)


def copick_project(root: Path, vol: np.ndarray, *, run: str = "TS1", tomo_type: str = "wbp",
                   spacing: float = VOXEL, static: bool = True) -> Path:
    """A copick filesystem project (the layout of copick 1.x): the tomogram in the static root."""
    overlay, stat = root / "overlay", root / "static"
    root.mkdir(parents=True, exist_ok=True)
    config = {"name": "test", "version": "0.5.0", "pickable_objects": [],
              "overlay_root": f"local://{overlay}", **({"static_root": f"local://{stat}"} if static else {})}
    (root / "copick_config.json").write_text(json.dumps(config))
    where = stat if static else overlay
    image = where / "ExperimentRuns" / run / f"VoxelSpacing{spacing:.3f}" / f"{tomo_type}.zarr"
    image.parent.mkdir(parents=True)
    write_ngff(image, vol, "0.4")
    (overlay / "ExperimentRuns" / run).mkdir(parents=True, exist_ok=True)
    return root / "copick_config.json"


def test_copick_project_tomogram_by_run_type_and_spacing(tmp_path):
    vol = volume()
    config = copick_project(tmp_path, vol)
    project = CopickProject.open(config)
    assert project.runs() == ["TS1"]
    image = project.tomogram("TS1", "wbp", 10)
    assert image == tmp_path / "static/ExperimentRuns/TS1/VoxelSpacing10.000/wbp.zarr"
    source = locate_tomogram(config, run="TS1", tomo_type="wbp", voxel_spacing=10.0)
    np.testing.assert_array_equal(np.asarray(open_tomogram(source).array()), vol)
    assert open_tomogram(locate_tomogram(config, level=1, run="TS1", tomo_type="wbp", voxel_spacing=10)).shape \
        == tuple(n // 2 for n in SHAPE)
    with pytest.raises(InputError, match=r"no tomogram 'denoised' .* 10.000 wbp"):
        project.tomogram("TS1", "denoised", 10)
    with pytest.raises(InputError, match="no run 'TS2'; runs: TS1"):
        project.tomogram("TS2", "wbp", 10)
    with pytest.raises(InputError, match="needs --tomo-type, --voxel-spacing"):
        locate_tomogram(config, run="TS1")


def test_copick_roots_given_as_file_urls_are_local_folders(tmp_path):
    vol = volume()
    config = copick_project(tmp_path, vol)
    data = json.loads(config.read_text())
    data = {**data, **{k: v.replace("local://", "file://") for k, v in data.items() if k.endswith("_root")}}
    config.write_text(json.dumps(data))
    assert CopickProject.open(config).tomogram("TS1", "wbp", 10) == \
        tmp_path / "static/ExperimentRuns/TS1/VoxelSpacing10.000/wbp.zarr"


def _explain(client, model, tomogram: str, out: Path):
    config = ExplainConfig(tomogram=tomogram, output=str(out), model=str(model), methods=("respond", "gradcam"),
                           block=2)
    return open_store(explain_tomogram(config, client=client).store)


def test_ome_zarr_and_copick_tomograms_explain_to_the_heatmaps_of_the_same_mrc(client, tmp_path, monkeypatch,
                                                                               capsys):
    vol, _ = particles_volume((24, 28, 24), n=4, seed=1)
    model = matched_filter_checkpoint(tmp_path / "mf.pt")
    mrc = _explain(client, model, str(write_mrc(tmp_path / "t.mrc", vol)), tmp_path / "mrc.zarr")
    v04 = write_with_ome_zarr(tmp_path / "v04.zarr", vol, "0.4")
    v05 = write_ngff(tmp_path / "v05.zarr", vol, "0.5", chunks=(16, 16, 16))
    stores = [_explain(client, model, str(p), tmp_path / f"{p.stem}.out.zarr") for p in (v04, v05)]
    config = copick_project(tmp_path / "copick", vol)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["tomocam", "explain", str(config), "--run", "TS1", "--tomo-type", "wbp",
                                      "--voxel-spacing", "10", "--model", str(model), "-m", "respond", "-m",
                                      "gradcam", "--block", "2", "--no-progress"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 0, capsys.readouterr().err
    stores.append(open_store(tmp_path / "TS1_wbp.zarr"))
    assert stores[-1].input_path.endswith("VoxelSpacing10.000/wbp.zarr/0")
    for store in stores:
        assert store.voxel_size == mrc.voxel_size and store.shape == mrc.shape
        for method in ("respond", "gradcam"):
            for level in range(mrc.n_levels):
                np.testing.assert_array_equal(store.heatmap(method, level)[...], mrc.heatmap(method, level)[...])
        np.testing.assert_array_equal(store.root["labels/segmentation/0"][...], mrc.root["labels/segmentation/0"][...])


def _bad(tmp: Path) -> dict[str, tuple[Path, dict, str]]:
    vol = volume()
    flat = tmp / "flat.zarr"
    root = zarr.open_group(flat, mode="w", zarr_format=3)
    root.create_array("0", data=vol[0])
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": a, "type": "space", "unit": "angstrom"} for a in "yx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [10.0, 10.0]}]}]}]}
    plain = tmp / "plain.zarr"
    zarr.open_group(plain, mode="w").create_array("0", data=vol)
    broken = write_ngff(tmp / "broken.zarr", vol, "0.5")
    (broken / "zarr.json").write_text("{not json")
    nolevel = write_ngff(tmp / "nolevel.zarr", vol, "0.4")
    shutil.rmtree(nolevel / "0")
    complex_ = write_ngff(tmp / "complex.zarr", vol.astype(np.complex64), "0.5", levels=1)
    channels = write_ngff(tmp / "channels.zarr", np.stack([vol, vol]), "0.5", axes="czyx", chunks=(1, 8, 8, 8),
                          levels=1)
    unitless = write_ngff(tmp / "unitless.zarr", vol, "0.4", unit=None)
    tiny = write_ngff(tmp / "tiny.zarr", vol, "0.5", voxel=0.001)
    parsec = write_ngff(tmp / "parsec.zarr", vol, "0.5", unit="parsec")
    folder = tmp / "folder"
    folder.mkdir()
    config = tmp / "copick_config.json"
    config.write_text(json.dumps({"overlay_root": "s3://bucket/project"}))
    return {
        "missing": (tmp / "missing.zarr", {}, "does not exist"),
        "2-D": (flat, {}, "is not a 3-D volume: its space axes are y, x"),
        "not OME": (plain, {}, "not an OME-Zarr image"),
        "corrupt metadata": (broken, {}, "unreadable zarr metadata"),
        "missing level": (nolevel, {}, "level 0 of OME-Zarr image .* cannot be read"),
        "no such level": (nolevel, {"level": 5}, "has 2 pyramid levels; --level 5"),
        "complex voxels": (complex_, {}, "voxels of type complex64"),
        "two channels": (channels, {}, "axis 'c' has 2; tomocam reads one 3-D volume"),
        "no unit": (unitless, {}, "gives no voxel size .* --voxel-size"),
        "implausible": (tiny, {}, "unset or implausible"),
        "unknown unit": (parsec, {}, "space unit parsec"),
        "plain folder": (folder, {}, "not a zarr store"),
        "copick without run": (config, {}, "copick project needs --run, --tomo-type, --voxel-spacing"),
    }


def test_bad_inputs_are_one_line_input_errors(tmp_path):
    for name, (path, kw, message) in _bad(tmp_path).items():
        with pytest.raises(InputError, match=message) as err:
            open_tomogram(locate_tomogram(path, **kw))
        assert "\n" not in str(err.value), name
    with pytest.raises(InputError, match="local projects only"):
        locate_tomogram(tmp_path / "copick_config.json", run="a", tomo_type="b", voxel_spacing=1.0)
    with pytest.raises(InputError, match="give its copick_config.json"):
        locate_tomogram(tmp_path / "x.mrc", run="a")


def test_cli_refuses_a_bad_zarr_in_one_line_and_an_output_inside_the_input(tmp_path, monkeypatch, capsys):
    vol = volume()
    flat_dir = tmp_path / "bad"
    flat_dir.mkdir()
    path = _bad(flat_dir)["two channels"][0]
    monkeypatch.setattr(sys, "argv", ["tomocam", "explain", str(path), "--no-progress"])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err.strip()
    assert stop.value.code != 0 and "tomocam reads one 3-D volume" in err and len(err.splitlines()) == 1
    good = write_ngff(tmp_path / "good.zarr", vol, "0.5")
    monkeypatch.setattr(sys, "argv", ["tomocam", "explain", str(good), "-o", str(good / "out.zarr"), "--overwrite"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code != 0 and "would replace the tomogram" in capsys.readouterr().err
    assert (good / "0").is_dir()


def test_default_output_never_lands_on_the_input(tmp_path):
    from tomocam.cli.explain import default_output

    assert default_output(tmp_path / "t.mrc", None, None) == tmp_path / "t.zarr"
    assert default_output(write_ngff(tmp_path / "run.zarr", volume(), "0.5"), None, None) == \
        tmp_path / "run_tomocam.zarr"
    assert default_output(tmp_path / "copick_config.json", "TS1", "wbp") == Path("TS1_wbp.zarr")
