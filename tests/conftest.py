"""Fixtures shared by several test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def seeded_one_thread() -> Iterator[None]:
    """Seed torch with 0 and run on one intra-op thread: the models of these tests are tiny, and on a shared
    machine extra threads only wait for each other. The previous thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
