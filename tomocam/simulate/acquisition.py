"""The acquisition model: rigid placement of a template, CTF, missing wedge and additive noise.

Everything here is a pure function on numpy arrays indexed ``(z, y, x)``. Physical vectors (rotations, shifts)
are written ``(x, y, z)`` as scipy's :class:`~scipy.spatial.transform.Rotation` uses them; the helpers below do the
reversal, so a rotation of +90 degrees about z maps a point at +x to +y, whatever the array layout.

Model (per box or per tomogram), as in subtomogram simulators that work in Fourier space:
``observed = F^-1[ W * (C * F[signal] + F[noise]) ]`` with ``C`` the CTF and ``W`` the missing-wedge mask, so both
signal and noise are band-limited to the sampled region (noise in real data comes through the same projections).
SNR is ``var(filtered signal) / var(filtered noise)``; ``inf`` means no noise.

Polarity: the CTF is applied with the sign that keeps low frequencies positive (as after the customary contrast
inversion), so particles stay *bright* on a dark background; checkpoints trained on this data record "bright".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from tomocam.errors import InputError


@dataclass(frozen=True)
class Acquisition:
    """Microscope and reconstruction parameters of the simulated data.

    ``defocus`` is underfocus in micrometres (positive), ``cs`` in millimetres, ``voltage`` in kV,
    ``tilt_range`` the half range in degrees (60 = a +-60 degree tilt series about the y axis), ``snr`` is
    ``var(signal) / var(noise)`` (``math.inf`` = noise-free), ``ctf=False`` skips the CTF.
    """

    snr: float = math.inf
    tilt_range: float = 60.0
    voltage: float = 300.0
    cs: float = 2.7
    defocus: float = 5.0
    amplitude_contrast: float = 0.07
    ctf: bool = True

    def __post_init__(self) -> None:
        if not (self.snr > 0):
            raise InputError(f"SNR must be positive or inf, found {self.snr}")
        if not (0 < self.tilt_range <= 90):
            raise InputError(f"tilt range must be in (0, 90] degrees, found {self.tilt_range}")
        if self.voltage <= 0 or self.cs < 0 or not (0 <= self.amplitude_contrast < 1):
            raise InputError(
                f"microscope parameters out of range: voltage {self.voltage} kV (> 0), Cs {self.cs} mm (>= 0), "
                f"amplitude contrast {self.amplitude_contrast} (in [0, 1))"
            )

    def as_dict(self) -> dict:
        """JSON-friendly parameters (``inf`` written as the string "inf")."""
        out = asdict(self)
        out["snr"] = "inf" if math.isinf(self.snr) else self.snr
        return out


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in angstrom for an accelerating voltage in kV."""
    v = voltage_kv * 1e3
    return 12.2643247 / math.sqrt(v * (1 + 0.978466e-6 * v))


def _frequencies(shape: tuple[int, ...], voxel_size: float) -> list[np.ndarray]:
    """Broadcastable spatial-frequency grids (1/angstrom) for each axis of ``shape`` (real-FFT on the last axis)."""
    grids = []
    for axis, n in enumerate(shape):
        f = np.fft.rfftfreq(n, d=voxel_size) if axis == len(shape) - 1 else np.fft.fftfreq(n, d=voxel_size)
        view = [1] * len(shape)
        view[axis] = f.size
        grids.append(f.reshape(view).astype(np.float32))
    return grids


def ctf(shape: tuple[int, int, int], voxel_size: float, acq: Acquisition) -> np.ndarray:
    """Isotropic 3-D CTF on the real-FFT grid of ``shape`` (z, y, x): ``(d, h, w // 2 + 1)`` float32.

    ``sqrt(1 - A^2) sin(chi) + A cos(chi)`` with ``chi = pi lambda df k^2 - pi/2 Cs lambda^3 k^4``; positive at
    k = 0 so that densities keep their (bright) sign.
    """
    fz, fy, fx = _frequencies(shape, voxel_size)
    k2 = fz**2 + fy**2 + fx**2
    lam = electron_wavelength(acq.voltage)
    df = acq.defocus * 1e4  # um -> A
    cs = acq.cs * 1e7  # mm -> A
    chi = math.pi * lam * df * k2 - 0.5 * math.pi * cs * lam**3 * k2**2
    a = acq.amplitude_contrast
    return (math.sqrt(1 - a * a) * np.sin(chi) + a * np.cos(chi)).astype(np.float32)


def missing_wedge_mask(shape: tuple[int, int, int], tilt_range: float) -> np.ndarray:
    """Fourier-space sampling mask of a single-axis tilt series about y, on the real-FFT grid of ``shape``.

    A tilt by theta samples the central plane perpendicular to the beam direction ``(sin theta, 0, cos theta)``;
    the union over ``|theta| <= tilt_range`` keeps ``|k_z| <= |k_x| tan(tilt_range)``. The rest, the missing wedge
    around the k_z axis, is zero. The origin is kept. Returns ``(d, h, w // 2 + 1)`` float32 of 0/1.
    """
    fz, _, fx = _frequencies(shape, 1.0)
    keep = np.abs(fz) <= np.abs(fx) * math.tan(math.radians(tilt_range)) + 1e-9
    keep = np.broadcast_to(keep, (shape[0], shape[1], shape[2] // 2 + 1)).copy()
    keep[0, :, 0] = True  # the k_z = k_x = 0 line (incl. the origin) lies in every tilt's plane
    return keep.astype(np.float32)


def transfer(shape: tuple[int, int, int], voxel_size: float, acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    """The signal filter ``W * C`` and the noise filter ``W`` on the real-FFT grid of ``shape``."""
    wedge = missing_wedge_mask(shape, acq.tilt_range)
    signal_filter = wedge * ctf(shape, voxel_size, acq) if acq.ctf else wedge
    return signal_filter.astype(np.float32), wedge


def apply_filter(volume: np.ndarray, filt: np.ndarray) -> np.ndarray:
    """``F^-1[filt * F[volume]]`` for a real ``(d, h, w)`` volume and a real-FFT-grid filter; float32."""
    from scipy import fft

    v = np.asarray(volume, dtype=np.float32)  # single precision FFTs: half the memory and time of numpy's float64
    return fft.irfftn(fft.rfftn(v) * filt, s=v.shape).astype(np.float32, copy=False)


def acquire(
    density: np.ndarray,
    voxel_size: float,
    acq: Acquisition,
    rng: np.random.Generator,
    *,
    filters: tuple[np.ndarray, np.ndarray] | None = None,
    noise_variance: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Image a density: returns ``(observed, clean)``, both ``(d, h, w)`` float32.

    ``clean`` is the CTF- and wedge-filtered signal, ``observed = clean + noise`` with noise white noise passed
    through the same wedge and scaled so that its expected variance is ``var(clean) / snr`` (or
    ``noise_variance`` when given: used for boxes without signal). ``filters`` caches :func:`transfer`.
    """
    signal_filter, wedge = filters if filters is not None else transfer(density.shape, voxel_size, acq)
    clean = apply_filter(density, signal_filter)
    if math.isinf(acq.snr) and noise_variance is None:
        return clean.copy(), clean
    target = float(clean.var()) / acq.snr if noise_variance is None else float(noise_variance)
    white = rng.standard_normal(density.shape, dtype=np.float32)
    noise = apply_filter(white, wedge)
    # Parseval: white noise of unit variance keeps, on average, the mean of |W|^2 over the full FFT grid.
    kept = _full_grid_mean(wedge, density.shape[-1])
    noise *= math.sqrt(target / kept) if kept > 0 else 0.0
    return (clean + noise).astype(np.float32), clean


def _full_grid_mean(half: np.ndarray, n_last: int) -> float:
    """Mean of a Hermitian-symmetric real filter over the full FFT grid, from its real-FFT half."""
    weights = np.full(half.shape[-1], 2.0)
    weights[0] = 1.0
    if n_last % 2 == 0:
        weights[-1] = 1.0
    return float((half**2 * weights).sum() / (half[..., 0].size * n_last))


def place(
    template: np.ndarray,
    rotation: Rotation,
    shift_xyz: np.ndarray,
    out_shape: tuple[int, int, int],
    *,
    order: int = 1,
) -> np.ndarray:
    """Rotate a template about its centre and put it at ``centre(out) + shift`` in a box of ``out_shape``.

    ``template`` is ``(d, h, w)``; ``shift_xyz`` in voxels (x, y, z). The particle is ``R`` applied to the
    template: a template point at offset ``p`` from the template centre lands at ``R p + shift`` from the output
    centre. Linear interpolation by default; zero outside the template. Returns ``out_shape`` float32.
    """
    rev = np.eye(3)[::-1]  # xyz <-> zyx
    r_inv = rev @ rotation.as_matrix().T @ rev  # output offset (zyx) -> template offset (zyx)
    c_in = (np.asarray(template.shape) - 1) / 2.0
    c_out = (np.asarray(out_shape) - 1) / 2.0 + np.asarray(shift_xyz, dtype=float)[::-1]
    offset = c_in - r_inv @ c_out
    return ndimage.affine_transform(
        template.astype(np.float32, copy=False), r_inv, offset=offset, output_shape=out_shape, order=order,
        mode="constant", cval=0.0, prefilter=False,
    ).astype(np.float32, copy=False)


def random_rotation(rng: np.random.Generator) -> Rotation:
    """A rotation drawn uniformly from SO(3)."""
    return Rotation.random(random_state=rng)
