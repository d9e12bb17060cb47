"""Class names: choosing classes by name or index, and the background class.

A model's (or a store's) classes are an ordered list of names; everything that takes ``-c/--classes`` resolves it
with :func:`class_indices`, so every command accepts the same names and indices and fails with the same message.
The background class is the class of boxes with no particle centred (``tomocam simulate subtomograms
--background``); it never labels a voxel and is not picked.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from tomocam.errors import ClassError

#: The name tomocam gives the background class.
BACKGROUND = "background"
#: Names (any case) that mean "no particle" in a model's classes, tomocam's own and other tools' usual ones.
_BACKGROUND_NAMES = (BACKGROUND, "bg", "noise")


def is_background(name: str) -> bool:
    """Whether class ``name`` means "no particle" (``background``, ``bg`` or ``noise``, any case)."""
    return name.lower() in _BACKGROUND_NAMES


def background_indices(classes: Sequence[str]) -> tuple[int, ...]:
    """Indices of the background classes (:func:`is_background`) among ``classes``."""
    return tuple(i for i, name in enumerate(classes) if is_background(name))


def class_indices(
    wanted: Sequence[str | int] | None, classes: Sequence[str], owner: str = "the model"
) -> tuple[int, ...]:
    """Indices into ``classes`` of the ``wanted`` class names or indices, in the order asked, without repeats.

    ``wanted`` empty or ``None`` means every class. A digit string that is not a class name is an index.
    ``owner`` says whose classes they are in the error message (``"the model"``, ``"store 'x.zarr'"``).

    Raises:
        ClassError: a name that is not one of ``classes``, or an index out of range; the message lists them.
    """
    if wanted is None or len(wanted) == 0:
        return tuple(range(len(classes)))
    names = list(classes)
    out = []
    for w in wanted:
        if isinstance(w, str):
            index = names.index(w) if w in names else int(w) if w.isdecimal() else -1
        else:
            index = operator.index(w)  # ints, NumPy and torch integers
        if not 0 <= index < len(names):
            raise ClassError(f"unknown class {w!r}; the classes of {owner} are: {', '.join(names)}")
        out.append(index)
    return tuple(dict.fromkeys(out))
