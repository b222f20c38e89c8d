import pytest


@pytest.fixture(autouse=True)
def light_worker_announced(served_models):
    """The API accepts jobs here as if a light worker were up (see served_models)."""
    return served_models
