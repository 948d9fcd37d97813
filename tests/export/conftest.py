"""Fixtures shared by the tests of export/."""

import pytest

from tests.export import tiny_mlp


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """One tiny MLP in every format, exported with the project's verified converters."""
    return tiny_mlp.export_every_format(tmp_path_factory.mktemp("measure"))
