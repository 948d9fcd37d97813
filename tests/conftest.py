"""Shared test set-up: quiet TensorFlow, seeded runs, no state leaking between tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


def _set_op_determinism(enabled):
    from tensorflow.python.framework import config

    if config.is_op_determinism_enabled() != enabled:
        if enabled:
            config.enable_op_determinism()
        else:
            config.disable_op_determinism()  # no public API for this


@pytest.fixture(autouse=True)
def _seed_and_reset_global_state():
    """Every test starts seeded, op determinism off, float32 policy; and ends so."""
    import keras

    _set_op_determinism(False)
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    _set_op_determinism(False)
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def deterministic():
    """TF op determinism for tests that compare numbers across runs."""
    _set_op_determinism(True)
    yield
