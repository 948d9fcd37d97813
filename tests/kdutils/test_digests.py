"""kdutils.digests: SHA-256 of files and folders against hashlib."""

import hashlib
import os

from kdutils.digests import file_digest


def test_a_file_digest_is_the_sha256_of_its_bytes(tmp_path):
    data = os.urandom(3 * 2**20 + 17)  # more than one chunk
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_digest(str(path)) == hashlib.sha256(data).hexdigest()


def test_a_folder_digest_covers_names_and_bytes_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y").write_bytes(b"2")
    (tmp_path / "a").write_bytes(b"1")
    expected = hashlib.sha256(b"a\x001" + os.path.join("b", "y").encode() + b"\x002")
    assert file_digest(str(tmp_path)) == expected.hexdigest()
    (tmp_path / "a").write_bytes(b"3")
    assert file_digest(str(tmp_path)) != expected.hexdigest()
