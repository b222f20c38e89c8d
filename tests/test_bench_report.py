"""bench/report.py: the table says which targets a run met, and lands in the README."""

from bench.report import END, START, markdown, update_readme

RESULTS = {
    "machine": {"cores": 2, "cpu": "test cpu", "commit": "abc1234", "date": "2026-11-22 06:00 UTC"},
    "quick": False,
    "seconds": 90,
    "overhead": {
        "m": {
            "raw": {"p50": 100.0, "p95": 120.0},
            "full": {"p50": 140.0, "p95": 170.0},
            "overhead_p50_ms": 40.0,
        }
    },
    "throughput": {"model": "m", "jobs": 60, "raw": 10.0, "1_worker": 5.0, "2_workers": 8.0},
    "residency": {"m": {"per_request": {"p50": 900.0}, "resident": {"p50": 80.0}, "ratio": 11.2}},
    "api_under_load": {
        "status_reads": {"requests_per_second": 650.0, "p99_ms": 120.0, "errors": 0},
        "submissions": {"requests_per_second": 90.0, "p99_ms": 800.0, "errors": 0},
    },
    "payload": [
        {
            "size": [512, 512],
            "max_json_513_bytes": 900000,
            "max_json_full_bytes": 896000,
            "mask_png_bytes": 4480,
        }
    ],
    "memory_mb": {"web": 270, "light_worker": 360, "heavy_worker": None},
}


def test_each_target_is_judged_from_the_numbers():
    rows = {line.split(" | ")[0]: line for line in markdown(RESULTS).splitlines() if line.startswith("| ")}
    assert rows["| overhead per job, `m`: full path p50 (p95) vs raw inference p50 (p95)"].endswith("| yes |")
    assert rows["| throughput, `m`, 2 workers (60 jobs through the API)"].endswith("| **no** |")  # 0.8 x
    assert rows["| residency, `m`: load, segment, discard per request vs resident (median)"].endswith(
        "| yes |"
    )
    assert rows["| status reads, 50 concurrent clients (gunicorn 2 × 8 threads)"].endswith(
        "| **no** |"
    )  # p99
    assert "200 × smaller" in markdown(RESULTS) and "commit `abc1234` on 2 cores" in markdown(RESULTS)


def test_the_readme_table_is_replaced_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\nrest\n")
    update_readme(readme, "| new |\n")
    assert readme.read_text() == f"intro\n{START}\n| new |\n{END}\nrest\n"
