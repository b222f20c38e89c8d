"""Install a model's weight file into its folder, from a folder or URL, verified by sha256.

A file is written to a temporary name and renamed only once its checksum matches, so a
worker never sees a half-copied or corrupt weight file under the real name.
"""

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20


class FetchError(Exception):
    pass


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_problem(spec):
    """Why the spec's weight file cannot be used (missing, wrong size, wrong sha256), or None.

    Files without a published checksum are checked layer by layer when a worker loads them.
    """
    weight, path = spec.weights, spec.weights_path()
    if not path.is_file():
        return (
            f"{path} is missing: run `python manage.py fetch_models --models {spec.name}` (from {weight.url})"
        )
    size = path.stat().st_size
    if weight.size is not None and size != weight.size:
        return f"{path} has {size} bytes; weights.size says {weight.size}"
    if weight.sha256 is not None and (digest := sha256_of(path)) != weight.sha256:
        return f"{path} has sha256 {digest}; weights.sha256 says {weight.sha256}"
    return None


def install(spec, source=None, progress=True):
    """Install one model's weight file into its folder; returns where it came from.

    Raises FetchError."""
    weight = spec.weights
    target = spec.weights_path()
    partial = target.with_name(target.name + ".part")
    origin = _open_source(weight, source)
    try:
        with (
            origin["stream"] as stream,
            open(partial, "wb") as out,
            tqdm(total=weight.size, unit="B", unit_scale=True, desc=weight.file, disable=not progress) as bar,
        ):
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))
        digest = sha256_of(partial)
        if weight.sha256 is not None and digest != weight.sha256:
            raise FetchError(
                f"{weight.file} from {origin['where']} has sha256 {digest}, expected {weight.sha256}"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return origin["where"]


def _open_source(weight, source):
    if source and not _is_url(source):
        return _open_local(weight, Path(source))
    url = f"{source.rstrip('/')}/{weight.file}" if source else weight.url
    if not url:
        raise FetchError(
            f"{weight.file} has no download URL (weights.url): put the file in the model's folder, "
            "or run `fetch_models --source DIR` with the folder holding it"
        )
    try:
        return {"stream": urllib.request.urlopen(url, timeout=30), "where": url}
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(
            f"could not download {weight.file} from {url}: {getattr(exc, 'reason', exc)}. "
            f"Download it by hand and run `fetch_models --source DIR` with the folder holding it."
        ) from None


def _open_local(weight, folder):
    if not folder.is_dir():
        raise FetchError(f"--source {folder} is not a folder")
    # Publishers' archives nest files in per-model folders; accept any depth.
    found = next((p for p in sorted(folder.rglob(weight.file)) if p.is_file()), None)
    if found is None:
        raise FetchError(f"{weight.file} is not in {folder}; get it from {weight.url}")
    return {"stream": open(found, "rb"), "where": str(found)}


def _is_url(source):
    return source.startswith(("http://", "https://", "file://"))
