"""``--device``: one resolver for train and evaluate, the device each explain worker uses, and torch's threads."""

from __future__ import annotations

import threading

import pytest
import torch

from tomocam.device import local_worker_device, map_on_threads, one_torch_thread, resolve_device
from tomocam.errors import InputError

HAS_CUDA = torch.cuda.is_available()


def test_auto_is_a_gpu_when_one_is_visible_else_the_cpu():
    assert resolve_device("auto") == torch.device("cuda" if HAS_CUDA else "cpu")
    assert local_worker_device("auto") == ("cuda:0" if HAS_CUDA else "cpu")


def test_cpu():
    assert resolve_device("cpu") == torch.device("cpu") and local_worker_device("cpu") == "cpu"


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "", "meta"])
def test_unknown_or_unsupported_devices_are_refused(name):
    with pytest.raises(InputError, match="device"):
        resolve_device(name)


def test_a_cuda_device_that_is_not_there_is_refused():
    with pytest.raises(InputError, match="cuda:99"):
        resolve_device("cuda:99")
    if not HAS_CUDA:
        with pytest.raises(InputError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU")
def test_train_takes_any_visible_gpu_and_explain_workers_use_their_own():
    last = torch.cuda.device_count() - 1
    assert resolve_device(f"cuda:{last}") == torch.device("cuda", last)
    assert local_worker_device("cuda") == local_worker_device("cuda:0") == "cuda:0"
    if last > 0:
        with pytest.raises(InputError, match="CUDA_VISIBLE_DEVICES"):
            local_worker_device(f"cuda:{last}")


def test_one_torch_thread_inside_the_block_and_the_count_restored_after_it_even_on_error():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with one_torch_thread():
                assert torch.get_num_threads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 3])
def test_map_on_threads_does_every_item_once_with_one_torch_thread_each_beside_the_caller(threads):
    seen: list[tuple[int, str, int]] = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        map_on_threads(lambda i: seen.append((i, threading.current_thread().name, torch.get_num_threads())),
                       range(20), threads)
        assert sorted(i for i, _, _ in seen) == list(range(20))
        if threads == 1:  # in the calling thread, with its torch threads
            assert {(name, n) for _, name, n in seen} == {(threading.current_thread().name, 2)}
        else:
            assert all(name.startswith("tomocam-piece") and n == 1 for _, name, n in seen)
        assert torch.get_num_threads() == 2  # the caller's own count is untouched
    finally:
        torch.set_num_threads(before)


def test_map_on_threads_raises_an_error_of_any_item():
    def work(i: int) -> None:
        if i == 7:
            raise ValueError("item 7")

    with pytest.raises(ValueError, match="item 7"):
        map_on_threads(work, range(10), 2)
