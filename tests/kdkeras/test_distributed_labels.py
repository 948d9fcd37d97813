"""1 vs 2 replicas: partly labelled and unlabelled batches, DKD, DIST and
top-k teacher targets.

The hard-label loss is normalised by the GLOBAL number of labelled examples
and DIST's intra-class term is computed over the global batch, so two
replicas must give the single device's weights and every reported number,
with an uneven last batch and a batch without any labelled example.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.e2e


def _run(config):
    here = os.path.dirname(__file__)
    completed = subprocess.run(
        [sys.executable, os.path.join(here, "distributed_labels.py"), config],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=os.path.dirname(os.path.dirname(here)),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


@pytest.mark.parametrize(
    "config",
    [
        "partial",
        pytest.param("partial_one_hot", marks=pytest.mark.slow),
        "unlabelled",
        pytest.param("dkd", marks=pytest.mark.slow),
        "dist",
        "top_k",
    ],
)
def test_two_replicas_equal_one_replica(config):
    results = _run(config)
    one, two = results["one"], results["two"]
    assert set(one["history"]) == set(two["history"])
    assert {"teacher_agreement", "val_distillation_loss"} <= set(one["history"])
    for name, values in one["history"].items():
        assert np.all(np.isfinite(values)), name
        np.testing.assert_allclose(
            two["history"][name], values, rtol=1e-5, atol=1e-7, err_msg=name
        )
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)
    if config == "unlabelled":
        assert "accuracy" not in one["history"]
        np.testing.assert_allclose(
            one["history"]["loss"], one["history"]["distillation_loss"], rtol=1e-6
        )
