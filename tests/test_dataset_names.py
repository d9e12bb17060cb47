"""Store names: the file name, made unique by parent folders where stems collide, independent of input order, and
stable once an index has given them."""

from __future__ import annotations

import itertools

from tomocam.dataset import store_names


def test_unique_stems_are_the_file_names_without_extension():
    assert store_names(["/d/TS_01.mrc", "/d/TS_02.rec"]) == {"/d/TS_01.mrc": "TS_01", "/d/TS_02.rec": "TS_02"}


def test_colliding_stems_get_as_many_parent_folders_as_it_takes():
    paths = ["/data/run1/TS_01/tomo.mrc", "/data/run1/TS_02/tomo.mrc", "/data/run2/TS_01/tomo.mrc", "/data/x.mrc"]
    assert store_names(paths) == {
        "/data/run1/TS_01/tomo.mrc": "run1_TS_01_tomo",
        "/data/run1/TS_02/tomo.mrc": "TS_02_tomo",
        "/data/run2/TS_01/tomo.mrc": "run2_TS_01_tomo",
        "/data/x.mrc": "x",
    }


def test_same_stem_in_one_folder_gets_the_extension():
    assert set(store_names(["/d/tomo.mrc", "/d/tomo.rec"]).values()) == {"d_tomo_mrc", "d_tomo_rec"}


def test_names_do_not_depend_on_the_order_of_the_inputs():
    paths = ["/a/TS_1/t.mrc", "/b/TS_1/t.mrc", "/a/TS_2/t.mrc", "/a/u.mrc"]
    first = store_names(paths)
    for order in itertools.permutations(paths):
        assert store_names(list(order)) == first
    assert list(store_names(paths[::-1])) == paths[::-1]  # the result keeps the inputs' order


def test_known_names_are_kept_and_new_ones_avoid_them():
    # an earlier run named /d/x/tomo.mrc 'tomo'; a second tomo.mrc joins the dataset: the first keeps its store
    assert store_names(["/d/x/tomo.mrc", "/d/y/tomo.mrc"], {"/d/x/tomo.mrc": "tomo"}) == {
        "/d/x/tomo.mrc": "tomo", "/d/y/tomo.mrc": "y_tomo"}
    # against a known name: folders and extension first, then a number
    assert store_names(["/a.mrc", "/b.mrc"], {"/b.mrc": "a"}) == {"/a.mrc": "a_mrc", "/b.mrc": "a"}
    known = {"/b.mrc": "a", "/c.mrc": "a_mrc"}
    assert store_names(["/a.mrc", *known], known) == {"/a.mrc": "a_mrc_2", **known}
