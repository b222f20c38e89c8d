"""Hostile uploads end to end: odd and broken-but-decodable images never crash a worker,
and hostile HTTP framing never gets a 5xx from the server.

The images are the accepted cases of the bad-upload battery and real photos broken on
purpose (tests/security/mutations.py) that the decoder still accepts, from a fixed seed so
every run sends the same ones. They go through the live server to one real worker.
"""

import io
import random
import socket
import time
from collections import Counter

import pytest
from PIL import Image

from core.imageio import ImageError, decode_image
from jobs.models import Job
from tests.odd_images import cases
from tests.security.mutations import MUTATIONS, mutate, seeds

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MUTATED = 24
SEED = 6
# Small images only: the light models take about 0.2 s each on them, so 38 jobs fit well
# within a minute on two cores with the worker's start.
MAX_PIXELS = 320 * 320
# Codes for a job that failed because of its image: the client's fault, said clearly.
CLIENT_CODES = {"invalid_image", "unsupported_format", "image_too_large"}
# What celery logs when a task raises or a pool process dies ("Process ... exited with
# 'signal 11 (SIGSEGV)'").
CRASH_SIGNS = ["Traceback", "WorkerLostError", "exited with", "CRITICAL"]


def decodable_mutants(count, seed):
    """(name, filename, bytes) of `count` broken photos the decoder still accepts."""
    rng = random.Random(seed)
    keys = sorted(seeds())
    found = []
    # Bounded: were the decoder to refuse (nearly) every mutant, this would draw for ever.
    # The draws are seeded, so the bound is the same on every machine; today it takes about
    # three draws a mutant.
    draws = 100 * count
    for _ in range(draws):
        key, mutation = rng.choice(keys), rng.choice(MUTATIONS)
        data = mutate(key, mutation, rng, rng.randint(1, 2))
        try:
            decoded = decode_image(io.BytesIO(data), MAX_PIXELS)
        except ImageError:
            continue
        if decoded.rgb.std() > 0:  # a flat image is valid but tells the models nothing new
            found.append((f"{key[0]} {key[1]} {mutation.__name__}", f"m{len(found)}.{key[0].lower()}", data))
            if len(found) == count:
                return found
    raise AssertionError(f"only {len(found)} of {count} mutants decoded in {draws} draws")


def odd_uploads():
    accepted = [(case.name, case.filename, case.data) for case in cases() if case.expect == "ok"]
    return accepted + decodable_mutants(MUTATED, SEED)


def test_odd_and_broken_but_decodable_images_never_crash_the_worker(start_worker, client, figure):
    worker = start_worker("hostile")
    # A pool process that crashes is replaced under a new pid: compare the pids.
    pid, children = worker.pid, worker.children()
    uploads = odd_uploads()
    started = time.monotonic()

    # 1. Submit every upload through the live server: each must be accepted.
    submitted = []
    for index, (name, filename, data) in enumerate(uploads):
        task = "semantic" if index % 2 == 0 else "instance"
        response = client.submit(data, filename, task=task)
        assert response.status_code == 202, f"{name}: {response.status_code} {response.text}"
        submitted.append((name, response.headers["Location"]))

    # 2. Wait for every job to end, and sort the outcomes.
    outcomes = Counter()
    for name, url in submitted:
        job = client.wait(url, timeout=60)
        error = job["error"] or {}
        outcomes[job["status"] if job["status"] == "succeeded" else f"failed {error.get('code')}"] += 1
        assert job["status"] == "succeeded" or error.get("code") in CLIENT_CODES, f"{name}: {job}"
        assert Job.objects.get(pk=job["id"]).worker.startswith("hostile@")
    elapsed = time.monotonic() - started

    # 3. The worker is the one we started, its pool child too, and nothing went wrong in it.
    assert worker.alive() and worker.pid == pid
    assert children and worker.children() == children, "a pool process died and was replaced"
    log = worker.log()
    assert not [sign for sign in CRASH_SIGNS if sign in log], log[-3000:]
    worker.stop()

    detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
    figure(
        f"worker crashes: {len(uploads)} odd or broken-but-decodable uploads through one worker "
        f"({len(uploads) - MUTATED} odd, {MUTATED} mutated, seed {SEED}) in {elapsed:.1f} s: {detail}; "
        f"worker pid {pid} alive throughout, its pool child unchanged, 0 tracebacks in its log"
    )


# --- HTTP framing the test client cannot send: a body shorter than its Content-Length ------


def raw_request(url, head, body=b"", half_close=True):
    """Send bytes to the live server; return (status, body bytes) or (None, b"") if it
    closed the connection without answering."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=15) as connection:
        connection.sendall(head.replace(b"\n", b"\r\n") + b"\r\n" + body)
        if half_close:
            connection.shutdown(socket.SHUT_WR)  # the body ends here, whatever was promised
        answer = b""
        # The socket timeout bounds each read, not the whole answer: a server trickling it
        # would hold this loop for ever without a deadline of its own.
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and (chunk := connection.recv(65536)):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    if not answer:
        return None, b""
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[-1]


def upload_head(url, token, length, extra=b""):
    return (
        b"POST /api/v1/jobs/ HTTP/1.1\n"
        + f"Host: {url.split('//')[1]}\nAuthorization: Token {token}\n".encode()
        + b"Content-Type: multipart/form-data; boundary=xyz\n"
        + (f"Content-Length: {length}\n".encode() if length is not None else b"")
        + extra
        + b"Connection: close\n"
    )


def test_bodies_that_lie_about_their_length_never_get_a_5xx(live_server, client, sent, served_models, figure):
    # `sent` records the queue in this process, where the live server runs: no message is
    # left in the broker for a later test's worker.
    token = client.session.headers["Authorization"].split()[1]
    image = io.BytesIO()
    Image.new("RGB", (32, 24), "teal").save(image, "PNG")
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="task"\r\n\r\nsemantic\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        + image.getvalue()
        + b"\r\n--xyz--\r\n"
    )
    url = live_server.url
    lies = {
        "promises 10x the body": upload_head(url, token, len(body) * 10),
        "promises 1 byte more": upload_head(url, token, len(body) + 1),
        "promises 1 MB, sends 100 bytes": (upload_head(url, token, 1_000_000), body[:100]),
        "no Content-Length, chunked": upload_head(url, token, None, b"Transfer-Encoding: chunked\n"),
        "two Content-Lengths": upload_head(
            url, token, len(body), f"Content-Length: {len(body) // 2}\n".encode()
        ),
    }
    answers = Counter()
    for name, request in lies.items():
        head, sent = request if isinstance(request, tuple) else (request, body)
        status, answer = raw_request(url, head, sent)
        answers[status] += 1
        assert status is None or status < 500, f"{name}: {status} {answer[:300]}"
        if status is not None and status >= 400:
            assert b'"error"' in answer, f"{name}: {answer[:300]}"
    assert client.get("/api/v1/jobs/").status_code == 200  # and the server still serves
    detail = ", ".join(f"{n}x{status or 'closed'}" for status, n in sorted(answers.items(), key=str))
    figure(f"Content-Length lies over raw HTTP: {len(lies)} requests, 0 5xx ({detail})")
