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
    "cutout": {
        "512 px": {
            "semantic": {"p50": 100.0, "p95": 110.0},
            "cutout": {"p50": 180.0, "p95": 200.0},
            "ratio": 1.8,
            "steps": {"refine": 5.0, "decontaminate": 2.0, "matte_png": 1.0, "cutout_png": 8.0},
        },
        "12 MP": {
            "semantic": {"p50": 500.0, "p95": 550.0},
            "cutout": {"p50": 1300.0, "p95": 1400.0},
            "ratio": 2.6,
            "steps": {"refine": 230.0, "decontaminate": 75.0, "matte_png": 60.0, "cutout_png": 410.0},
        },
    },
    "throughput": {
        "model": "m",
        "jobs": 60,
        "1_worker": {"jobs_per_second": 5.0, "raw": 10.0, "threads": 0},
        "2_workers": {"jobs_per_second": 8.0, "raw": 10.0, "threads": 1},
    },
    "residency": {"m": {"per_request": {"p50": 900.0}, "resident": {"p50": 80.0}, "ratio": 11.2}},
    "residency_heavy": {
        "weights": "random weights",
        "rounds": 2,
        "models": {"h": {"per_request": {"p50": 28000.0}, "resident": {"p50": 3600.0}, "ratio": 7.8}},
    },
    "api_under_load": {
        "status_reads": {"requests_per_second": 650.0, "p99_ms": 120.0, "errors": 0, "tool": "wrk"},
        "status_reads_uncached": {"requests_per_second": 400.0, "p99_ms": 200.0, "errors": 0, "tool": "wrk"},
        "submissions": {"requests_per_second": 90.0, "p99_ms": 800.0, "errors": 0, "tool": "wrk"},
    },
    "payload": [
        {
            "size": [512, 512],
            "max_json_513_bytes": 900000,
            "max_json_full_bytes": 896000,
            "mask_png_bytes": 4480,
        }
    ],
    "memory_mb": {"web": 270, "light_worker": 360, "heavy_worker": 2180, "heavy_worker_model": "h"},
}


def test_each_target_is_judged_from_the_numbers():
    table = markdown(RESULTS)
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}

    def judged(start):
        [line] = [line for figure, line in rows.items() if figure.startswith(start)]
        return line.rsplit(" | ", 2)[-1]

    assert judged("| overhead per job, `m`") == "yes |"
    assert judged("| throughput, `m`, 2 workers, 1 inference thread each") == "**no** |"  # 0.8 x
    assert (
        judged("| transparent cutout vs semantic job, `deeplabv3_mnv2_pascal`, 12 MP") == "**no** |"
    )  # 2.6 x
    assert (
        judged("| transparent cutout vs semantic job, `deeplabv3_mnv2_pascal`, 512 px") == " |"
    )  # no target
    assert "refine 230.0 ms, decontaminate 75.0 ms, matte PNG 60.0 ms, cutout PNG 410.0 ms" in table
    assert judged("| residency, `m`: load") == "yes |"
    assert judged("| residency, `h`: PixelLib's tutorial") == "**no** |"  # 7.8 x
    assert judged("| status reads, 50 concurrent clients") == "**no** |"  # p99
    assert "200 × smaller" in table and "commit `abc1234` on 2 cores" in table
    assert "2180 MB (`h`, after a job)" in table


def test_the_readme_table_is_replaced_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\nrest\n")
    update_readme(readme, "| new |\n")
    assert readme.read_text() == f"intro\n{START}\n| new |\n{END}\nrest\n"
