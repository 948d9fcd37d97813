import keras
import numpy as np
import pytest

import kdkeras
from kdkeras import hints
from tests import reference


def _data(examples=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 4, size=examples).astype("int32")
    return x, y


def _cnn(filters, width, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", name="features"
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(width, activation="relu", name="embedding"),
            keras.layers.Dense(4, name="logits"),
        ]
    )


def _narrow_from_wide(hint_list, teacher=None):
    """A Distiller of the narrow CNN (seed 1) from the wide one (seed 2)."""
    return kdkeras.Distiller(
        student=_cnn(4, 16, seed=1),
        teacher=_cnn(8, 32, seed=2) if teacher is None else teacher,
        hints=hint_list,
    )


@pytest.mark.parametrize(
    "student_filters, student_width, projected",
    [
        (4, 16, True),  # narrower student: learned projections
        (8, 32, False),  # same widths: identity
    ],
)
def test_hint_loss_is_reported_and_matches_reference(
    student_filters, student_width, projected
):
    x, y = _data()
    teacher = _cnn(8, 32, seed=2)
    student = _cnn(student_filters, student_width, seed=1)
    distiller = kdkeras.Distiller(
        student=student,
        teacher=teacher,
        hints=[
            kdkeras.Hint("features", "features", weight=0.5),
            ("embedding", "embedding", 2.0),
        ],
    )
    assert [p is not None for p in distiller.projections] == [projected] * 2
    distiller.compile(optimizer="adam", alpha=0.2, temperature=3.0)
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)

    def features(model, name, projection):
        values = keras.Model(model.inputs, model.get_layer(name).output)(x)
        return np.asarray(projection(values) if projection else values)

    expected_hint = 0.0
    for weight, name, projection in zip(
        (0.5, 2.0), ("features", "embedding"), distiller.projections, strict=True
    ):
        squared = (
            features(student, name, projection).astype(np.float64)
            - features(teacher, name, None)
        ) ** 2
        expected_hint += weight * squared.reshape(len(x), -1).mean(axis=1).mean()
    np.testing.assert_allclose(result["hint_loss"], expected_hint, rtol=1e-4)
    soft = reference.kd_loss_per_example(
        teacher.predict(x, verbose=0), student.predict(x, verbose=0), 3.0
    ).mean()
    np.testing.assert_allclose(
        result["loss"],
        0.2 * result["student_loss"] + 0.8 * soft + expected_hint,
        rtol=1e-4,
    )


def test_hint_training_pulls_features_together_and_trains_projection():
    x, y = _data(128)
    teacher = _cnn(8, 32, seed=2)
    distiller = _narrow_from_wide(
        [kdkeras.Hint("embedding", "embedding", weight=1.0)], teacher
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), alpha=0.5)
    projection_before = distiller.projections[0].get_weights()[0].copy()
    teacher_before = [w.copy() for w in teacher.get_weights()]
    history = distiller.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert history.history["hint_loss"][-1] < 0.5 * history.history["hint_loss"][0]
    assert not np.allclose(distiller.projections[0].get_weights()[0], projection_before)
    for old, new in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_distiller_with_hints_saves_and_loads(tmp_path):
    x, y = _data()
    distiller = _narrow_from_wide([kdkeras.Hint("embedding", "embedding", weight=0.3)])
    distiller.compile(optimizer="adam")
    distiller.fit(x, y, epochs=1, verbose=0)
    distiller.save(tmp_path / "distiller.keras")
    restored = keras.saving.load_model(tmp_path / "distiller.keras")
    assert [h.get_config() for h in restored.hints] == [
        {"student_layer": "embedding", "teacher_layer": "embedding", "weight": 0.3}
    ]
    np.testing.assert_allclose(
        restored.projections[0].get_weights()[0],
        distiller.projections[0].get_weights()[0],
    )
    np.testing.assert_allclose(
        restored.evaluate(x, y, verbose=0, return_dict=True)["hint_loss"],
        distiller.evaluate(x, y, verbose=0, return_dict=True)["hint_loss"],
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: hints.Hint("", "a"), TypeError, "student_layer"),
        (lambda: hints.Hint("a", 3), TypeError, "teacher_layer"),
        (lambda: hints.Hint("a", "b", weight=-1), ValueError, "weight"),
        (lambda: hints.as_hints([42]), TypeError, "hints"),
        (
            lambda: _narrow_from_wide([("nope", "features")]),
            ValueError,
            "no layer named 'nope'",
        ),
        (
            lambda: _narrow_from_wide([("features", "embedding")]),
            ValueError,
            "Cannot project",
        ),
    ],
)
def test_bad_hints_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()
