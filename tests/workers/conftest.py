import pytest

from workers import registry
from workers.catalog import MODELS, model_problems


@pytest.fixture(scope="session")
def engines():
    """Every light engine, loaded once with the real weights that `make setup` installs."""
    problems = list(model_problems(MODELS))
    assert not problems, f"weights missing, run `make setup`: {problems}"
    registry.load_engines(list(MODELS))
    return registry
