"""The store a fixed run writes is the one pinned in tests/data/reference_store.json, array by array: refactoring
the pipeline or the writer changes no byte users read (see tests/reference_store.py to regenerate it on purpose)."""

from __future__ import annotations

import json

from reference_store import REFERENCE, build_reference_store, store_digest


def test_a_fixed_run_writes_the_reference_store_array_by_array(client, tmp_path):
    expected = json.loads(REFERENCE.read_text())
    found = store_digest(build_reference_store(tmp_path, client))
    assert sorted(found["arrays"]) == sorted(expected["arrays"])
    for name, want in expected["arrays"].items():
        assert found["arrays"][name] == want, f"array {name} differs"
    assert found["groups"] == expected["groups"]
