"""benchmarks.zoo.matrix: the printed section states the run's own settings."""

import pytest

from benchmarks.zoo import matrix
from benchmarks.zoo import steps


@pytest.mark.parametrize("epochs", [1, 2, steps.EPOCHS + 4])
def test_section_states_the_epochs_the_run_used(epochs, tmp_path, monkeypatch):
    used = []

    def fake_row(architecture, folder, epochs, log=None):
        used.append((architecture.name, epochs))
        return dict.fromkeys(steps.STEPS, "ok"), ["n"], {}

    monkeypatch.setattr(steps, "run_row", fake_row)
    result = matrix.run_zoo(
        ["mobilenet_a025", "bert_4to1"], work_dir=str(tmp_path), epochs=epochs, log=str
    )
    assert used == [("mobilenet_a025", epochs), ("bert_4to1", epochs)]
    section = matrix.render_matrix(result, "python -m benchmarks.zoo --epochs=N")
    multiplier = _multiplier("bert_4to1")
    assert f"trained {epochs} epochs (bert_4to1: {multiplier * epochs}) on" in section


def test_section_names_only_the_longer_rows_it_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(
        steps,
        "run_row",
        lambda architecture, folder, epochs, log=None: ({}, [], {}),
    )
    result = matrix.run_zoo(["mobilenet_a025"], work_dir=str(tmp_path), log=str)
    section = matrix.render_matrix(result, "python -m benchmarks.zoo")
    assert f"trained {steps.EPOCHS} epochs on" in section
    assert "bert_4to1" not in section


def _multiplier(name):
    from benchmarks.zoo import architectures

    return architectures.ARCHITECTURES[name].epochs_multiplier


@pytest.mark.parametrize(
    "error,allowed",
    [("0.0102", True), ("0.0199", True), ("0.02", False), ("0.5", False)],
)
def test_float16_refusal_accepts_only_errors_within_twice_the_gate(error, allowed):
    cell = (
        "ParityError: tflite quantize=float16 parity failed: relative error "
        f"{error} >= 0.01 against Keras on 256 held-out inputs (labelled data)"
    )
    assert steps.is_allowed(cell, None, "efficientnet_b0", "tflite_float16") is allowed
    assert not steps.is_allowed(cell, None, "mobilenet_a025", "tflite_float16")
    dynamic = cell.replace("float16", "dynamic")
    assert not steps.is_allowed(dynamic, None, "efficientnet_b0", "tflite_dynamic")
