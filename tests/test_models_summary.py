"""The training summary that ``tomocam info`` prints, from a checkpoint's provenance."""

from __future__ import annotations

from tomocam.models.summary import history_rows, training_summary


def test_summary_of_a_full_provenance():
    provenance = {
        "command": "tomocam train d.zarr", "dataset": "d.zarr", "epochs": 20, "best_epoch": 7,
        "val_accuracy": 0.91234, "test_accuracy": 0.875,
        "dataset_attrs": {"n_per_class": 100, "box": 40, "acquisition": {"snr": 4.0, "tilt_range": 45.0, "ctf": False},
                          "sampling": {"max_shift": 10.0, "distractors": 0.5, "min_snr": 0.1}},
        "split": {"n_fit": 10, "n_val": 3, "n_test": 4},
    }
    assert training_summary(provenance) == [
        ("trained", "best epoch 7 of 20; validation accuracy 0.912, test accuracy 0.875"),
        ("data", "d.zarr (100 boxes per class, 40^3, SNR 0.1 to 4, tilt +-45 deg, no CTF, shift <= 10 voxels, "
                 "0.5 neighbours per box)"),
        ("split", "fit 10, validation 3, test 4 boxes"),
        ("command", "tomocam train d.zarr"),
    ]


def test_summary_of_a_hand_made_checkpoint_is_empty_and_partial_provenance_shows_what_it_has():
    assert training_summary({}) == [] and history_rows({}) == []
    assert training_summary({"test_accuracy": 0.5}) == [("trained", "test accuracy 0.500")]


def test_history_rows_in_column_order():
    rows = history_rows({"history": [{"val_accuracy": 0.5, "epoch": 1, "train_loss": 1.0, "train_accuracy": 0.25,
                                      "val_loss": 2.0}]})
    assert rows == [("1", "1.0000", "0.2500", "2.0000", "0.5000")]
