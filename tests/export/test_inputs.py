"""export.inputs: data of every input dtype is taken as Keras takes it.

A keras_hub BERT's `padding_mask` comes from its preprocessor as bool while
the backbone's input is int32: labelled, calibration and verification data
with a bool mask (or int token ids) must be accepted wherever the model's
input is integer or bool, converted to the input's own dtype. Keras takes a
bool array for a float input too (`model(x)`, `predict` and `evaluate` cast
it to 0.0/1.0), so it is accepted as such; NaN and inf in float inputs, text
and complex numbers are still refused.
"""

import numpy as np
import pytest

from export import inputs

LENGTH = 6


def spec(mask_dtype="int32"):
    """`{image: float32 (4,), token_ids: int32 (LENGTH,) in [0, 9), mask}`."""
    return inputs.InputSpec(
        ["image", "mask", "token_ids"],
        [(None, 4), (None, LENGTH), (None, LENGTH)],
        ["float32", mask_dtype, "int32"],
        structure="dict",
        ranges=[None, None, (0, 9)],
    )


def data(count=12, seed=0, mask_dtype=bool):
    rng = np.random.default_rng(seed)
    mask = rng.random((count, LENGTH)) < 0.6
    mask[:, 0] = True
    return {
        "image": rng.normal(size=(count, 4)).astype(np.float32),
        "token_ids": (rng.integers(0, 9, (count, LENGTH)) * mask).astype(np.int32),
        "mask": mask.astype(mask_dtype),
    }


def test_a_bool_mask_for_an_int_input_is_its_0_1_values():
    x = data()
    checked = spec().check(x, "--labelled-data")
    assert checked["mask"].dtype == np.int32
    np.testing.assert_array_equal(checked["mask"], x["mask"].astype(np.int32))
    np.testing.assert_array_equal(checked["token_ids"], x["token_ids"])
    assert checked["image"].dtype == np.float32


@pytest.mark.parametrize("given", [bool, np.int64, np.uint8, np.float64])
def test_a_bool_input_takes_bools_and_integral_numbers_as_keras_casts_them(given):
    x = data(mask_dtype=given)
    if given is not bool:
        x["mask"][:, -1] *= 3  # Keras' cast to bool: any non-zero value is True.
    checked = spec("bool").check(x, "--representative-data")
    assert checked["mask"].dtype == np.bool_
    np.testing.assert_array_equal(checked["mask"], x["mask"] != 0)


def test_labelled_npz_with_a_bool_mask_is_accepted(tmp_path):
    x = data(count=20, seed=3)
    y = np.arange(20) % 3
    path = tmp_path / "labelled.npz"
    np.savez(path, **{f"x_{name}": value for name, value in x.items()}, y=y)
    checked, labels = inputs.load_labelled(str(path), spec(), num_classes=3)
    np.testing.assert_array_equal(checked["mask"], x["mask"].astype(np.int32))
    np.testing.assert_array_equal(labels, y)


def test_a_single_integer_input_keeps_its_token_ids():
    token_spec = inputs.InputSpec(["ids"], [(None, LENGTH)], ["int32"])
    ids = np.random.default_rng(1).integers(0, 50, (8, LENGTH))
    checked = inputs.check_labelled(ids, ids[:, 0] % 2, token_spec)[0]
    assert checked.dtype == np.int32
    np.testing.assert_array_equal(checked, ids)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: x["image"].__setitem__((2, 1), np.nan), "must be finite"),
        (lambda x: x["image"].__setitem__((0, 0), -np.inf), "must be finite"),
        (lambda x: x.update(mask=x["mask"] + 0.5), "must hold integers"),
        (lambda x: x.update(token_ids=x["token_ids"].astype("U3")), "real numbers"),
        (lambda x: x.update(image=x["image"] * 1j), "real numbers"),
    ],
)
def test_what_keras_would_not_take_is_one_line_naming_the_input(change, message):
    x = data()
    change(x)
    with pytest.raises(ValueError, match=message) as caught:
        spec().check(x, "--labelled-data")
    text = str(caught.value)
    assert "\n" not in text and text.startswith("`--labelled-data[")


@pytest.mark.parametrize("shape", [(None, 4), (None, None)])
def test_a_bool_array_for_a_float_input_is_its_0_1_values_as_in_keras(shape):
    mask = np.random.default_rng(2).random((20, 4)) < 0.5
    checked = inputs.load_inputs(mask, shape, flag="--data")
    assert checked.dtype == np.float32
    np.testing.assert_array_equal(checked, mask.astype(np.float32))
