"""Choosing classes by name or index (one parser for every command) and recognising the background class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomocam.classes import BACKGROUND, background_indices, class_indices, is_background
from tomocam.errors import ClassError

CLASSES = ["shell", "rod", "3", "background"]


def test_names_and_indices_in_the_order_asked_without_repeats():
    assert class_indices(["rod", "shell", "rod"], CLASSES) == (1, 0)
    assert class_indices(["1", 0, np.int64(3), torch.tensor(1)], CLASSES) == (1, 0, 3)


def test_a_class_named_like_a_digit_is_found_by_name_first():
    assert class_indices(["3"], CLASSES) == (2,)


def test_none_or_empty_means_every_class():
    assert class_indices(None, CLASSES) == class_indices([], CLASSES) == (0, 1, 2, 3)


@pytest.mark.parametrize("bad", ["ribosome", "4", 4, -1, "-1", "1.0"])
def test_unknown_names_and_out_of_range_indices_are_refused_with_the_known_classes(bad):
    with pytest.raises(ClassError, match=rf"unknown class {bad!r}; the classes of store 'x.zarr' are: shell, rod"):
        class_indices([bad], CLASSES, owner="store 'x.zarr'")


def test_background_names_in_any_case():
    assert is_background(BACKGROUND) and is_background("BG") and is_background("Noise")
    assert not is_background("shell") and not is_background("backgrounds")
    assert background_indices(["noise", "shell", "Background"]) == (0, 2)
