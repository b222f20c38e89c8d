"""Many concurrent clients against the API: wrk when it is installed, else asyncio httpx.

wrk (C, `make bench` installs it from the distribution where it can) costs a few percent
of a core at a thousand requests a second. The httpx fallback costs about a millisecond of
CPU per request, taken from the two cores the server runs on, so its figures understate
the server; every result names the tool that produced it.
"""

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

# wrk reports latencies as "12.34ms", "870.00us", "1.02s".
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def hammer(url, token, clients, seconds, upload=None):
    """GET `url` (or POST `upload`, (filename, bytes, form fields), as multipart) with
    `clients` concurrent connections for `seconds`, each sending its next request as soon
    as the last is answered. Returns req/s, p50 and p99 in ms, errors and the tool."""
    if shutil.which("wrk"):
        return _wrk(url, token, clients, seconds, upload)
    return asyncio.run(_httpx(url, token, clients, seconds, upload))


def _wrk(url, token, clients, seconds, upload):
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Token {token}",
        ]
        if upload is not None:
            command += ["-s", _post_script(Path(folder), upload)]
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", output)[1])
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    broken = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests_per_second": round(float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]), 1),
        "p50_ms": _latency(output, "50%"),
        "p99_ms": _latency(output, "99%"),
        "errors": (int(bad[1]) if bad else 0) + (sum(map(int, broken.groups())) if broken else 0),
        "requests": total,
        "tool": "wrk",
    }


def _latency(output, percentile):
    value, unit = re.search(rf"^\s+{percentile}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE).groups()
    return round(float(value) * UNITS_MS[unit], 1)


def _post_script(folder, upload):
    """A wrk Lua script that POSTs the upload as multipart/form-data."""
    filename, data, fields = upload
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n\r\n'
    (folder / "body").write_bytes(
        "".join(parts).encode() + head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    )
    script = folder / "post.lua"
    script.write_text(
        f'local file = io.open("{folder / "body"}", "rb")\n'
        "wrk.body = file:read('*a')\n"
        "file:close()\n"
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={boundary}"\n'
    )
    return str(script)


async def _httpx(url, token, clients, seconds, upload):
    latencies, errors = [], 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Token {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def request():
            if upload is None:
                return await client.get(url)
            filename, data, fields = upload
            return await client.post(url, files={"image": (filename, data)}, data=fields)

        async def one_client():
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await request()
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "errors": errors,
        "requests": len(latencies),
        "tool": "httpx (wrk not installed)",
    }
