"""What an operator and a polling client see of a running job: its stage, and log lines
that carry its id (plain or JSON)."""

import copy
import io
import json
import logging
import logging.config

import pytest
from django.conf import settings

from jobs.models import Job
from tests.workers.test_pipeline import submitted
from workers import pipeline

pytestmark = pytest.mark.django_db


def test_a_job_reports_each_stage_while_it_runs_and_none_once_ended(alice, sent, engines, monkeypatch):
    job = submitted(alice)
    assert alice.get(f"/api/v1/jobs/{job.id}/").json()["progress"] == "queued"

    seen = []
    advance = Job.advance

    def watch(self, stage):
        advance(self, stage)
        seen.append(alice.get(f"/api/v1/jobs/{job.id}/").json()["progress"])

    monkeypatch.setattr(Job, "advance", watch)
    pipeline.run_job(job.id, "w@host")
    assert seen == ["inferring", "rendering"]
    body = alice.get(f"/api/v1/jobs/{job.id}/").json()
    assert body["status"] == "succeeded" and body["progress"] is None


@pytest.fixture
def log_lines():
    """The root logger configured as production's with LOG_FORMAT=json, into a buffer."""
    stream = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"].update(formatter="json", stream=stream)
    logging.config.dictConfig(config)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.config.dictConfig(settings.LOGGING)


def test_json_log_lines_carry_the_job_id_of_the_job_being_run(alice, sent, engines, log_lines):
    job = submitted(alice)
    logging.getLogger("jobs.elsewhere").info("before any job")
    pipeline.run_job(job.id, "w@host")
    lines = log_lines()
    assert lines[0]["message"] == "before any job" and lines[0]["job_id"] is None
    done = next(line for line in lines if "succeeded" in line["message"])
    assert done["job_id"] == str(job.id) and done["level"] == "INFO" and done["logger"] == "workers.pipeline"
    assert {"time", "level", "logger", "message", "job_id"} <= set(done)


def test_the_plain_format_tags_job_lines():
    from core.joblog import JobContextFilter, job_context

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    with job_context("1234"):
        JobContextFilter().filter(record)
    assert record.job_tag == "job=1234 "
