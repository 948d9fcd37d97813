import gzip
import os

import keras
import numpy as np
import pytest

from models import data


def _isolated_keras_home(tmp_path, monkeypatch):
    """Points Keras' home folder (fixed at import) at an empty temp folder."""
    from keras.src.backend import config

    os.makedirs(tmp_path / "keras_home")
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras_home"))


def _fake_debian_dir(folder, images=4):
    """Four gzipped IDX files, as Debian's dataset-fashion-mnist ships them."""
    rng = np.random.default_rng(0)
    os.makedirs(folder)
    pixels = rng.integers(0, 256, size=(images, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=images, dtype=np.uint8)
    for prefix in ("train", "t10k"):
        with gzip.open(
            os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), "wb"
        ) as f:
            f.write(b"\0" * 16 + pixels.tobytes())
        with gzip.open(
            os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), "wb"
        ) as f:
            f.write(b"\0" * 8 + labels.tobytes())
    return pixels, labels


def test_debian_files_seed_keras_cache_and_keras_loader_reads_them(
    tmp_path, monkeypatch
):
    _isolated_keras_home(tmp_path, monkeypatch)
    pixels, labels = _fake_debian_dir(str(tmp_path / "debian"))
    monkeypatch.setattr(data, "DEBIAN_DIR", str(tmp_path / "debian"))
    monkeypatch.setattr(
        data.seed_keras_cache, "__defaults__", (str(tmp_path / "debian"),)
    )

    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()

    cache = data.keras_cache_dir()
    assert cache.startswith(str(tmp_path / "keras_home"))
    assert sorted(os.listdir(cache)) == sorted(data.FILES)
    assert x_train.shape == (4, 28, 28, 1) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train[..., 0], pixels / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_test, labels)
    assert data.seed_keras_cache(str(tmp_path / "debian")) == 0  # already there


def test_no_cache_no_package_no_network_says_what_to_do(tmp_path, monkeypatch):
    _isolated_keras_home(tmp_path, monkeypatch)
    monkeypatch.setattr(
        data.seed_keras_cache, "__defaults__", (str(tmp_path / "missing"),)
    )

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(RuntimeError) as error:
        data.load_fashion_mnist()
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert data.keras_cache_dir() in message
    assert "\n" not in message
