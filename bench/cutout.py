"""What a cutout costs against a plain semantic job on the same photo, at 512 px and 12 MP.

Through the service: one request each with `Prefer: wait` (upload, queue, worker, render,
store, answer), semantic and transparent cutout taking turns on the same photo so that a
busy spell of the machine falls on both. In this process: the cutout's own steps timed
apart (the guided-filter refinement, decontamination, and the PNG encodes), on the same
model's output.
"""

import io
import time

import httpx
import numpy as np
from PIL import Image

from bench.measure import loaded_model, summary

MODEL = "deeplabv3_mnv2_pascal"
SIZES = {"512 px": None, "12 MP": (4032, 3024)}


def photos(astronaut):
    """The astronaut (512x512) and the same photo at 4032x3024, a phone camera's 12 MP."""
    twelve = Image.open(io.BytesIO(astronaut)).convert("RGB").resize(SIZES["12 MP"], Image.BICUBIC)
    buffer = io.BytesIO()
    twelve.save(buffer, "JPEG", quality=92)
    return {"512 px": astronaut, "12 MP": buffer.getvalue()}


def costs(base_url, token, astronaut, rounds=5):
    """{size: {semantic, cutout (p50/p95 ms), ratio, steps (ms)}} for both sizes."""
    results = {}
    for size, data in photos(astronaut).items():
        timed = _through_service(base_url, token, data, rounds)
        results[size] = {
            **timed,
            "ratio": round(timed["cutout"]["p50"] / timed["semantic"]["p50"], 2),
            "steps": _steps(data, rounds),
        }
    return results


def _through_service(base_url, token, data, rounds):
    latencies = {"semantic": [], "cutout": []}
    worker_ms = {"semantic": [], "cutout": []}  # the job's own inference + rendering
    fields = {"semantic": {"task": "semantic"}, "cutout": {"task": "cutout", "foreground": "person"}}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=180) as client:
        for index in range(rounds + 1):  # the first round only warms both paths up
            for task in ("semantic", "cutout"):
                started = time.perf_counter()
                response = client.post(
                    "/api/v1/jobs/",
                    files={"image": ("photo.jpg", data)},
                    data={**fields[task], "model": MODEL},
                    headers={"Prefer": "wait=60"},
                )
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 201 and response.json()["status"] == "succeeded", response.text
                if index:
                    latencies[task].append(elapsed)
                    timings = response.json()["timings"]
                    worker_ms[task].append(timings["inference_ms"] + timings["rendering_ms"])
    return {
        **{task: summary(values) for task, values in latencies.items()},
        "worker_ms": {task: round(float(np.median(values))) for task, values in worker_ms.items()},
    }


def _steps(data, rounds):
    """Median ms of each of the cutout's own steps, in this process."""
    from core.imageio import decode_image
    from workers import cutout, effects, fitting, png, rendering
    from workers.runtimes import inference_threads

    model = loaded_model(MODEL)
    rgb = decode_image(io.BytesIO(data), 10**9).rgb
    seen = fitting.network_copy(rgb, model.spec.input)  # as the worker's network sees it
    result = model.infer(seen, {"class_ids": [model.spec.labels.index("person")]})
    coarse = effects.coarse_alpha("semantic", result, *seen.shape[:2])
    times = {"refine": [], "decontaminate": [], "matte_png": [], "cutout_png": []}
    for _ in range(rounds):
        started = time.perf_counter()
        alpha = effects.refine(rgb, coarse, max(model.spec.input.width, model.spec.input.height))
        times["refine"].append(time.perf_counter() - started)
        started = time.perf_counter()
        foreground = effects.decontaminate(rgb, alpha, reduced=seen)
        times["decontaminate"].append(time.perf_counter() - started)
        levels = rendering.alpha_levels(alpha)
        started = time.perf_counter()
        png.encode(levels)
        times["matte_png"].append(time.perf_counter() - started)
        started = time.perf_counter()
        png.encode(cutout._rgba(foreground, levels), threads=inference_threads())
        times["cutout_png"].append(time.perf_counter() - started)
    return {step: round(1000 * float(np.median(values)), 1) for step, values in times.items()}
