"""Tests for export.measure.sizes (and the bytes on disk of export.staging)."""

import gzip
import os

import numpy as np

from export import measure
from export import staging


def test_gzip_size_small_for_sparse_file_and_directory(tmp_path):
    sparse = tmp_path / "sparse.bin"
    data = np.zeros(200_000, np.uint8)
    data[::997] = 7
    sparse.write_bytes(data.tobytes())
    assert staging.artifact_size_bytes(str(sparse)) == os.path.getsize(sparse)
    size = measure.gzip_size(str(sparse))
    assert size < os.path.getsize(sparse) / 20
    # Same answer as the gzip module's own output, up to the header's file name and time.
    assert abs(size - len(gzip.compress(data.tobytes(), compresslevel=6))) < 32
    noise = tmp_path / "folder" / "noise.bin"
    noise.parent.mkdir()
    noise.write_bytes(np.random.default_rng(0).bytes(50_000))
    (tmp_path / "folder" / "copy.bin").write_bytes(data.tobytes())
    folder = str(tmp_path / "folder")
    assert staging.artifact_size_bytes(folder) == 250_000
    assert 50_000 < measure.gzip_size(folder) < 60_000  # noise does not compress
