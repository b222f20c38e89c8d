"""What several worker tests need: a job run to success in process, and filling polygons
as a canvas does."""

import numpy as np

from jobs.models import Job
from tests.jobs.helpers import submit
from workers.pipeline import run_job


def succeeded(client, task, data, name, **fields):
    """Submit a job through the API, run it here with run_job, and return it succeeded."""
    response = submit(client, task, data=data, name=name, **fields)
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    return job


def filled(parts, height, width, rule="evenodd"):
    """The pixels whose centres the rings enclose, as a canvas fills one path of all of them:
    by the even-odd rule, or by the nonzero one (holes stay open only where they wind
    against their exterior). Exact for pixel-corner coordinates: no centre lies on an edge
    between two whole-pixel corners that is horizontal or vertical."""
    crossings = np.zeros((height, width + 1), dtype=np.int64)
    for ring in (ring for part in parts for ring in [part["exterior"], *part["holes"]]):
        start = np.asarray(ring, dtype=np.float64)
        end = np.roll(start, -1, axis=0)
        for (ax, ay), (bx, by) in zip(start, end, strict=True):
            if ay == by:
                continue
            low, high = sorted((ay, by))
            rows = np.arange(max(0, int(np.ceil(low - 0.5))), min(height, int(np.ceil(high - 0.5))))
            xs = ax + (rows + 0.5 - ay) * (bx - ax) / (by - ay)
            columns = np.clip(np.ceil(xs - 0.5).astype(np.int64), 0, width)
            np.add.at(crossings, (rows, columns), 1 if rule == "evenodd" else (1 if by > ay else -1))
    winding = np.cumsum(crossings, axis=1)[:, :width]
    return ((winding % 2 == 1) if rule == "evenodd" else (winding != 0)).astype(np.uint8)
