"""Losses and distillers saved before `kdkeras.losses` became a package load.

The configs below are what `keras.saving.serialize_keras_object` wrote when
the losses lived in the module `kdkeras/losses.py`: the registered names
(`kdkeras>DKD`, ...) find the classes in their new modules.
"""

import json

import keras
import numpy as np
import pytest

import kdkeras

SAVED = [
    '{"module": "kdkeras.losses", "class_name": "DKD", "config": {"name": "dkd", '
    '"temperature": 2.0, "alpha": 0.5, "beta": 2.0}, "registered_name": "kdkeras>DKD"}',
    '{"module": "kdkeras.losses", "class_name": "DIST", "config": {"name": "dist", '
    '"temperature": 3.0, "beta": 2.0, "gamma": 0.5}, "registered_name": '
    '"kdkeras>DIST"}',
    '{"module": "kdkeras.losses", "class_name": "KnowledgeDistillation", "config": '
    '{"name": "knowledge_distillation", "temperature": 5.0}, "registered_name": '
    '"kdkeras>KnowledgeDistillation"}',
]


@pytest.mark.parametrize("saved", SAVED)
def test_a_loss_saved_from_the_old_module_loads_with_its_settings(saved):
    saved = json.loads(saved)
    loss = keras.saving.deserialize_keras_object(saved)
    assert type(loss) is getattr(kdkeras.losses, saved["class_name"])
    assert loss.get_config() == saved["config"]
    assert (
        keras.saving.serialize_keras_object(loss)["registered_name"]
        == (saved["registered_name"])
    )


def test_a_distiller_with_a_loaded_dkd_loss_saves_loads_and_trains(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.integers(0, 3, 32)

    def mlp(width, name):
        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(width), keras.layers.Dense(3)],
            name=name,
        )

    distiller = kdkeras.Distiller(student=mlp(8, "student"), teacher=mlp(16, "t"))
    distiller.compile(
        optimizer="adam",
        distillation_loss_fn=keras.saving.deserialize_keras_object(
            json.loads(SAVED[0])
        ),
        alpha=0.2,
    )
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.distillation_loss_fn, kdkeras.DKD)
    assert loaded.distillation_loss_fn.get_config() == json.loads(SAVED[0])["config"]
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), distiller.predict(x, verbose=0)
    )
    before = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert before == distiller.evaluate(x, y, verbose=0, return_dict=True)
    loaded.fit(x, y, epochs=1, verbose=0)
    assert loaded.evaluate(x, y, verbose=0, return_dict=True)["loss"] != before["loss"]
