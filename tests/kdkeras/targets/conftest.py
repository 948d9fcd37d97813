"""Fixtures shared by the tests of kdkeras/targets/."""

import pytest

from kdkeras.targets.memory import cache


@pytest.fixture
def teacher_calls(monkeypatch):
    """Counts how often the cache actually runs the teacher."""
    calls = []
    original = cache.compute_soft_targets

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(cache, "compute_soft_targets", counting)
    return calls
