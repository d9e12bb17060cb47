"""Simulated cryo-ET data: structures, the acquisition model, labelled subtomogram datasets and whole tomograms.

The verbs users call:

- :func:`builtin_structures`, :func:`load_structures`: templates (procedural shapes, MRC maps, PDB/mmCIF models)
- :class:`Acquisition`, :class:`Sampling`: the imaging and box-sampling parameters
- :func:`simulate_subtomograms` -> a zarr dataset on disk; :func:`open_dataset` reads it
- :func:`simulate_tomogram` -> :class:`SimulatedTomogram` (volume, particle table, label mask); :func:`write_tomogram`
"""

from tomocam.simulate.acquisition import Acquisition
from tomocam.simulate.dataset import Dataset, open_dataset
from tomocam.simulate.shapes import builtin_structures, shape_names
from tomocam.simulate.structures import Structure, load_structures
from tomocam.simulate.subtomograms import Sampling, simulate_subtomograms
from tomocam.simulate.tomogram import SimulatedTomogram, simulate_tomogram, write_tomogram

__all__ = [
    "Acquisition", "Dataset", "Sampling", "SimulatedTomogram", "Structure", "builtin_structures",
    "load_structures", "open_dataset", "shape_names", "simulate_subtomograms", "simulate_tomogram",
    "write_tomogram",
]
