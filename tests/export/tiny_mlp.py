"""A tiny dense network exported to every format, shared by the measurement tests."""

import keras
import numpy as np

# Small timing bounds: these tests check what is reported, not how fast anything is.
FAST = {"min_time_s": 0.02, "min_iterations": 25, "max_time_s": 0.3, "warmup_s": 0.01}


def tiny_mlp(seed=0, hidden=(12, 8)):
    """A Flatten-Dense MLP on 6x6x1 inputs with non-zero biases."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((6, 6, 1)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(keras.layers.Dense(10))
    model = keras.Sequential(layers)
    # Non-zero biases, so that no converter can drop them.
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.bias.assign(
                np.random.default_rng(seed).normal(0, 0.5, layer.bias.shape)
            )
    return model


def export_every_format(folder):
    """`(model, {format: path})`: the tiny MLP exported with the verified converters."""
    from export.to_onnx import export_onnx
    from export.to_savedmodel import export_savedmodel
    from export.to_tflite import export_tflite

    model = tiny_mlp()
    paths = {"keras": str(folder / "mlp.keras")}
    model.save(paths["keras"])
    paths["savedmodel"] = export_savedmodel(model, str(folder / "mlp_savedmodel")).path
    paths["tflite"] = export_tflite(model, str(folder / "mlp.tflite")).path
    paths["onnx"] = export_onnx(model, str(folder / "mlp.onnx")).path
    paths["numpy"] = paths[
        "keras"
    ]  # the floor extracts the weights from the .keras file
    return model, paths
