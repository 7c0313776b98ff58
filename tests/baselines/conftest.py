"""Baseline tests run torch on one thread: the DP's large tensor operations are slower, not faster, with
two threads on a machine whose cores are shared (the previous thread count is restored afterwards)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
