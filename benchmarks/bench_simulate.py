"""Benchmark: simulation speed of whole tomograms and of subtomogram datasets.

Prints a table: wall time of ``simulate_tomogram`` (placement of particles, CTF, missing wedge and noise over the
whole volume) for a few volume sizes, and boxes per second of ``simulate_subtomograms`` with 1 and 2 worker
processes (40^3 boxes of the built-in shapes). Usage::

    python benchmarks/bench_simulate.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

from tomocam.simulate import Acquisition, Sampling, builtin_structures, simulate_subtomograms, simulate_tomogram


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shapes = builtin_structures()
    print(f"{'case':<44} {'best s':>8} {'median s':>9} {'rate':>14}")
    for shape, n in (((100, 200, 200), 40), ((200, 400, 400), 300)):
        make = functools.partial(simulate_tomogram, shape, shapes, n, acquisition=Acquisition(snr=1.0), seed=0)
        best, med = _best(make, args.repeats)
        voxels = shape[0] * shape[1] * shape[2]
        print(f"{'tomogram ' + 'x'.join(map(str, shape)) + f', {n} particles':<44} {best:8.2f} {med:9.2f} "
              f"{voxels / best / 1e6:9.1f} Mvox/s")
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            counter = iter(range(10**6))
            n_per_class = 40
            total = n_per_class * (len(shapes) + 1)

            def run(tmp: str = tmp, counter=counter, n_per_class: int = n_per_class, workers: int = workers) -> None:
                simulate_subtomograms(shapes, Path(tmp) / f"d{next(counter)}.zarr", n_per_class=n_per_class,
                                      acquisition=Acquisition(snr=1.0),
                                      sampling=Sampling(max_shift=10, distractors=0.5, background=True),
                                      workers=workers)

            best, med = _best(run, args.repeats)
            print(f"{f'subtomograms 40^3, {total} boxes, {workers} worker(s)':<44} {best:8.2f} {med:9.2f} "
                  f"{total / best:9.1f} box/s")


if __name__ == "__main__":
    main()
