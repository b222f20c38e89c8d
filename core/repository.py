"""The model repository: one folder per model under SEGMENT_MODELS_DIR, each with its spec.

`models/<name>/model.toml` says what the model is; its weights sit beside it (installed by
`manage.py fetch_models`, never committed). Adding a model is adding a folder; removing one
is `rm -r`. A folder whose spec is broken is reported by name, never silently skipped.
"""

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .specs import SPEC_FILE, SpecError, load_spec


@dataclass
class Repository:
    folder: Path
    specs: dict = field(default_factory=dict)  # name -> ModelSpec, in name order
    problems: dict = field(default_factory=dict)  # folder name -> what is wrong with its spec


def scan(folder):
    """Every model folder under `folder` (a missing or empty folder has none)."""
    folder = Path(folder)
    repository = Repository(folder)
    if not folder.is_dir():
        return repository
    for path in sorted(p for p in folder.iterdir() if (p / SPEC_FILE).is_file()):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            repository.problems[path.name] = str(exc)
            continue
        repository.specs[spec.name] = spec
    return repository


@cache
def _scanned(folder):
    return scan(folder)


def repository():
    """SEGMENT_MODELS_DIR's models, read once per process (a new model needs a restart)."""
    from django.conf import settings  # the one Django dependency, kept out of scan()

    return _scanned(Path(settings.SEGMENT_MODELS_DIR).resolve())


def local_specs():
    return repository().specs
