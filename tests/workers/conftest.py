import pytest

from workers import registry
from workers.catalog import model_problems, required_model_names


@pytest.fixture(scope="session")
def engines():
    """Every light engine, loaded once with the real weights that `make setup` installs.

    Never the heavy ones: importing pixellib would switch this process to graph mode.
    """
    names = required_model_names()
    problems = list(model_problems(names))
    assert not problems, f"weights missing, run `make setup`: {problems}"
    registry.load_engines(names)
    return registry
