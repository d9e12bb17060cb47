"""The acquisition model: rotation convention, missing wedge, CTF, SNR."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tomocam.errors import InputError
from tomocam.simulate.acquisition import (
    Acquisition,
    acquire,
    ctf,
    electron_wavelength,
    missing_wedge_mask,
    place,
    transfer,
)


def _blob(shape: tuple[int, int, int], at_zyx: tuple[int, int, int]) -> np.ndarray:
    v = np.zeros(shape, dtype=np.float32)
    v[at_zyx] = 1.0
    return v


def _peak_zyx(v: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(np.argmax(v), v.shape))


def test_rotation_about_z_maps_x_to_y():
    # template 21^3, point at +5 voxels along x from the centre (index 10): array index (z, y, x) = (10, 10, 15)
    template = _blob((21, 21, 21), (10, 10, 15))
    out = place(template, Rotation.from_euler("z", 90, degrees=True), np.zeros(3), (21, 21, 21))
    assert _peak_zyx(out) == (10, 15, 10)  # now at +5 along y
    assert out.max() == pytest.approx(1.0, abs=1e-5)


def test_rotation_about_y_maps_z_to_x_and_shift_moves_in_xyz_order():
    template = _blob((21, 21, 21), (14, 10, 10))  # +4 along z
    out = place(template, Rotation.from_euler("y", 90, degrees=True), np.array([0.0, 2.0, -3.0]), (25, 25, 25))
    # R_y(90) maps +z to +x; then shift (x, y, z) = (0, 2, -3) from the output centre (12, 12, 12)
    assert _peak_zyx(out) == (12 - 3, 12 + 2, 12 + 4)


def test_rotation_preserves_mass_of_a_smooth_template():
    z, y, x = np.mgrid[:24, :24, :24] - 11.5
    template = np.exp(-((x / 4) ** 2 + (y / 2) ** 2 + (z / 3) ** 2)).astype(np.float32)
    out = place(template, Rotation.from_euler("xyz", [30, 50, 70], degrees=True), np.zeros(3), (32, 32, 32))
    assert out.sum() == pytest.approx(template.sum(), rel=0.02)


@pytest.mark.parametrize("shape", [(32, 32, 32), (16, 20, 25)])
@pytest.mark.parametrize("tilt", [45.0, 60.0])
def test_missing_wedge_region_is_empty(shape, tilt):
    rng = np.random.default_rng(0)
    acq = Acquisition(snr=0.5, tilt_range=tilt)
    observed, _ = acquire(rng.standard_normal(shape).astype(np.float32), 10.0, acq, rng)
    f = np.fft.fftn(observed)
    kz = np.fft.fftfreq(shape[0])[:, None, None]
    kx = np.fft.fftfreq(shape[2])[None, None, :]
    wedge = np.abs(kz) > np.abs(kx) * math.tan(math.radians(tilt)) + 1e-6
    wedge = np.broadcast_to(wedge, shape)
    assert wedge.mean() > 0.1  # the test looks at a real region
    energy = np.abs(f) ** 2
    assert energy[wedge].max() < 1e-8 * energy[~wedge].max()
    # and the sampled region is not empty
    assert energy[~wedge].sum() > 0


def test_wedge_mask_keeps_tilt_range_directions():
    mask = missing_wedge_mask((64, 64, 64), 60.0)
    fz, fx = np.fft.fftfreq(64), np.fft.rfftfreq(64)
    # a direction at 50 degrees from the x axis in the xz plane is sampled, one at 70 degrees is not
    for angle, kept in ((50.0, 1.0), (70.0, 0.0)):
        kx, kz = 0.25 * math.cos(math.radians(angle)), 0.25 * math.sin(math.radians(angle))
        iz, ix = int(np.argmin(abs(fz - kz))), int(np.argmin(abs(fx - kx)))
        assert mask[iz, 0, ix] == kept


@pytest.mark.parametrize("snr", [0.1, 1.0, 10.0])
def test_measured_snr_matches_requested(snr):
    rng = np.random.default_rng(1)
    density = np.zeros((40, 40, 40), dtype=np.float32)
    density[12:28, 15:25, 10:30] = 1.0
    observed, clean = acquire(density, 10.0, Acquisition(snr=snr), rng)
    measured = clean.var() / (observed - clean).var()
    assert measured == pytest.approx(snr, rel=0.10)


def test_infinite_snr_means_no_noise():
    rng = np.random.default_rng(2)
    density = rng.random((20, 20, 20)).astype(np.float32)
    observed, clean = acquire(density, 10.0, Acquisition(), rng)
    np.testing.assert_array_equal(observed, clean)


def test_ctf_matches_formula_and_keeps_bright_polarity():
    acq = Acquisition(voltage=300, cs=2.7, defocus=4.0, amplitude_contrast=0.1)
    c = ctf((64, 64, 64), 5.0, acq)
    assert c[0, 0, 0] == pytest.approx(0.1, abs=1e-6)  # A cos(0): positive, density keeps its sign
    lam = electron_wavelength(300)
    assert lam == pytest.approx(0.019687, rel=1e-3)
    k = 10 / (64 * 5.0)  # index 10 along x
    chi = math.pi * lam * 4e4 * k**2 - 0.5 * math.pi * 2.7e7 * lam**3 * k**4
    assert c[0, 0, 10] == pytest.approx(math.sqrt(1 - 0.01) * math.sin(chi) + 0.1 * math.cos(chi), abs=1e-5)


def test_transfer_without_ctf_is_the_wedge():
    sig, wedge = transfer((16, 16, 16), 10.0, Acquisition(ctf=False))
    np.testing.assert_array_equal(sig, wedge)


@pytest.mark.parametrize("kwargs", [{"snr": 0}, {"snr": -1}, {"tilt_range": 0}, {"tilt_range": 95},
                                    {"amplitude_contrast": 1.0}, {"voltage": 0}])
def test_bad_parameters_raise_input_error(kwargs):
    with pytest.raises(InputError):
        Acquisition(**kwargs)
