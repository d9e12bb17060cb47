"""`tomocam simulate`: labelled subtomogram datasets and whole tomograms with ground truth."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Simulate subtomograms and tomograms.", no_args_is_help=True)

_STRUCTURES_HELP = (
    "Structures: MRC maps, PDB/mmCIF models or folders of them (repeatable). "
    "Without it, the built-in procedural shapes are used."
)


def _structures(paths: list[Path] | None, shapes: str | None, voxel_size: float):
    from tomocam.errors import InputError
    from tomocam.simulate import builtin_structures, load_structures

    if paths and shapes:
        raise InputError("give either --structure or --shapes, not both")
    if paths:
        return load_structures(paths, voxel_size)
    names = [s.strip() for s in shapes.split(",") if s.strip()] if shapes else None
    return builtin_structures(names, voxel_size)


def _acquisition(snr: str, tilt_range: float, voltage: float, cs: float, defocus: float, amplitude_contrast: float,
                 no_ctf: bool):
    import math

    from tomocam.errors import InputError
    from tomocam.simulate import Acquisition

    try:
        snr_value = math.inf if snr.strip().lower() in ("inf", "infinity") else float(snr)
    except ValueError:
        raise InputError(f"--snr must be a positive number or 'inf', found {snr!r}") from None
    return Acquisition(snr=snr_value, tilt_range=tilt_range, voltage=voltage, cs=cs, defocus=defocus,
                       amplitude_contrast=amplitude_contrast, ctf=not no_ctf)


SnrOpt = Annotated[str, typer.Option("--snr", help="Signal-to-noise ratio var(signal)/var(noise), or 'inf'.")]
TiltOpt = Annotated[float, typer.Option("--tilt-range", help="Half tilt range in degrees (missing wedge).")]
VoxelOpt = Annotated[float, typer.Option("--voxel-size", help="Voxel size in angstrom.")]
VoltOpt = Annotated[float, typer.Option("--voltage", help="Acceleration voltage, kV.")]
CsOpt = Annotated[float, typer.Option("--cs", help="Spherical aberration, mm.")]
DefocusOpt = Annotated[float, typer.Option("--defocus", help="Underfocus, micrometres.")]
AmpOpt = Annotated[float, typer.Option("--amplitude-contrast", help="Amplitude contrast fraction.")]
NoCtfOpt = Annotated[bool, typer.Option("--no-ctf", help="Skip the CTF (wedge and noise only).")]
StructOpt = Annotated[list[Path] | None, typer.Option("--structure", "-s", help=_STRUCTURES_HELP)]
ShapesOpt = Annotated[str | None, typer.Option("--shapes", help="Comma-separated subset of built-in shapes.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same data.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]


@app.command("subtomograms")
def subtomograms(
    out: Annotated[Path, typer.Argument(help="Output dataset (a zarr folder).")],
    n_per_class: Annotated[int, typer.Option("--n-per-class", "-n", help="Boxes per class.")] = 100,
    structure: StructOpt = None,
    shapes: ShapesOpt = None,
    box: Annotated[int, typer.Option("--box", help="Box edge in voxels.")] = 40,
    voxel_size: VoxelOpt = 10.0,
    snr: SnrOpt = "inf",
    tilt_range: TiltOpt = 60.0,
    voltage: VoltOpt = 300.0,
    cs: CsOpt = 2.7,
    defocus: DefocusOpt = 5.0,
    amplitude_contrast: AmpOpt = 0.07,
    no_ctf: NoCtfOpt = False,
    max_shift: Annotated[float, typer.Option("--max-shift",
                                             help="Max shift of the centred particle, voxels per axis.")] = 2.0,
    distractors: Annotated[float, typer.Option("--distractors",
                                               help="Mean number of off-centre neighbours per box.")] = 0.0,
    background: Annotated[bool, typer.Option("--background",
                                             help="Add a 'background' class (no particle centred).")] = False,
    min_snr: Annotated[float | None, typer.Option("--min-snr", help="Draw each box's SNR log-uniformly "
                                                     "between this and --snr.")] = None,
    seed: SeedOpt = 0,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Processes (default: all cores).")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Simulate a labelled dataset of subtomograms (N per class) for training and evaluation."""
    from tomocam.progress import progress_bars
    from tomocam.simulate import Sampling, simulate_subtomograms

    structures = _structures(structure, shapes, voxel_size)
    acq = _acquisition(snr, tilt_range, voltage, cs, defocus, amplitude_contrast, no_ctf)
    sampling = Sampling(box=box, max_shift=max_shift, distractors=distractors, background=background, min_snr=min_snr)
    command = shlex.join(["tomocam", *sys.argv[1:]])
    with progress_bars() as bar:
        task = bar.add_task("simulating", total=None)
        simulate_subtomograms(
            structures, out, n_per_class=n_per_class, acquisition=acq, sampling=sampling, seed=seed,
            workers=workers, command=command, overwrite=overwrite,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    n_classes = len(structures) + int(background)
    typer.echo(f"wrote {n_classes * n_per_class} boxes of {n_classes} classes to {out}")


@app.command("tomogram")
def tomogram(
    out: Annotated[Path, typer.Argument(help="Output tomogram (.mrc); the ground truth goes beside it.")],
    shape: Annotated[str, typer.Option("--shape", help="Volume size z,y,x in voxels.")] = "100,200,200",
    n_particles: Annotated[int, typer.Option("--n-particles", "-n", help="Number of particles.")] = 40,
    structure: StructOpt = None,
    shapes: ShapesOpt = None,
    voxel_size: VoxelOpt = 10.0,
    snr: SnrOpt = "1",
    tilt_range: TiltOpt = 60.0,
    voltage: VoltOpt = 300.0,
    cs: CsOpt = 2.7,
    defocus: DefocusOpt = 5.0,
    amplitude_contrast: AmpOpt = 0.07,
    no_ctf: NoCtfOpt = False,
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Simulate a tomogram with particles of several classes, plus a particle table and a label mask."""
    from tomocam.errors import InputError
    from tomocam.simulate import simulate_tomogram, write_tomogram

    try:
        shape_zyx = tuple(int(v) for v in shape.split(","))
    except ValueError:
        raise InputError(f"--shape must be three integers z,y,x, found {shape!r}") from None
    if len(shape_zyx) != 3:
        raise InputError(f"--shape must be three integers z,y,x, found {shape!r}")
    structures = _structures(structure, shapes, voxel_size)
    acq = _acquisition(snr, tilt_range, voltage, cs, defocus, amplitude_contrast, no_ctf)
    sim = simulate_tomogram(shape_zyx, structures, n_particles, acquisition=acq, seed=seed)
    paths = write_tomogram(sim, out, overwrite=overwrite)
    typer.echo(f"wrote {paths['tomogram']} ({len(sim.table)} particles), {paths['particles']}, {paths['mask']}")
