"""bench/report.py: the table says which targets a run met, and lands in the README."""

from bench.report import END, START, markdown, targets, update_readme

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
    "cpu_outside_inference": {
        "model": "m",
        "threads": 1,
        "idle_ms_per_s": {"web": 1.0, "worker": 2.0, "database": 0.5, "redis": 1.0},
        "sizes": {
            "512 px": {
                "jobs": 30,
                "cpu_ms_per_job": {"web": 12.0, "worker": 60.0, "database": 3.0, "redis": 1.0},
                "raw_inference_cpu_ms": 40.0,
                "worker_outside_inference_ms": 20.0,
                "outside_inference_ms": 36.0,
                "ratio_to_raw": 0.9,
                "worker_inference_wall_ms": 41.0,
                "idle_background_ms": 0.3,
                "client_cpu_ms": 8.0,
            },
            "12 MP": {
                "jobs": 8,
                "cpu_ms_per_job": {"web": 150.0, "worker": 900.0, "database": 3.0, "redis": 2.0},
                "raw_inference_cpu_ms": 500.0,
                "worker_outside_inference_ms": 400.0,
                "outside_inference_ms": 555.0,
                "ratio_to_raw": 1.11,
                "worker_inference_wall_ms": 510.0,
                "idle_background_ms": 2.0,
                "client_cpu_ms": 30.0,
            },
        },
    },
    "stack_floor": {
        "requests": 200,
        "status_read_ms": {"web": 1.5, "worker": 0.0, "redis": 0.2, "database": 0.1},
        "empty_task_ms": {"web": 0.0, "worker": 2.2, "redis": 0.3, "database": 0.0},
        "floor_ms": 4.3,
    },
    "batching": {
        "model": "m",
        "threads": 2,
        "measured": True,
        "photos_per_size": 40,
        "rows": [
            {"batch": 1, "ms_per_photo": 50.0, "ratio_to_batch_1": 1.0},
            {"batch": 2, "ms_per_photo": 51.0, "ratio_to_batch_1": 1.02},
            {"batch": 4, "ms_per_photo": 52.0, "ratio_to_batch_1": 1.04},
            {"batch": 8, "ms_per_photo": 51.5, "ratio_to_batch_1": 1.03},
        ],
        "worst_ratio": 1.04,
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


def _rows(table):
    return {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}


def _judged(table, start):
    [line] = [line for figure, line in _rows(table).items() if figure.startswith(start)]
    return line.rsplit(" | ", 2)[-1]


def test_each_target_is_judged_from_the_numbers():
    table = markdown(RESULTS)

    def judged(start):
        return _judged(table, start)

    assert judged("| overhead per job, `m`") == "yes |"
    assert judged("| throughput, `m`, 2 workers, 1 inference thread each") == "**no** |"  # 0.8 x
    assert judged("| throughput, `m`, 1 worker") == " |"  # no target
    assert (
        judged("| transparent cutout vs semantic job, `deeplabv3_mnv2_pascal`, 12 MP") == "**no** |"
    )  # 2.6 x
    assert (
        judged("| transparent cutout vs semantic job, `deeplabv3_mnv2_pascal`, 512 px") == " |"
    )  # no target
    assert judged("| CPU outside inference per job, `m`, 512 px") == "**no** |"  # 0.9 x, not <= 0.2 x
    assert judged("| CPU outside inference per job, `m`, 12 MP") == "**no** |"  # 1.11 x, not <= 1 x
    assert judged("| batching, `m`") == "yes |"  # 1.04 x
    assert "refine 230.0 ms, decontaminate 75.0 ms, matte PNG 60.0 ms, cutout PNG 410.0 ms" in table
    assert "web 12.0, worker 60.0 (20.0 outside inference), database 3.0, redis 1.0 ms per job" in table
    assert judged("| status reads, 50 concurrent clients") == "**no** |"  # p99
    assert "200 × smaller" in table and "commit `abc1234` on 2 cores" in table
    assert "2180 MB (`h`, after a job)" in table


def test_residency_rows_are_information_without_a_target():
    table = markdown(RESULTS)
    assert _judged(table, "| residency, `m`: load") == " |"  # 11.2 x, but loading takes ms
    assert _judged(table, "| residency, `h`: PixelLib's tutorial") == " |"  # a reference row
    assert not [each for each in targets(RESULTS) if each["name"].startswith("residency")]


def test_the_targets_object_names_each_target_with_its_value_and_verdict():
    by_name = {each["name"]: each for each in targets(RESULTS)}
    assert list(by_name) == [
        "overhead_p50_ms/m",
        "cpu_outside_inference/512px",
        "cpu_outside_inference/12mp",
        "cutout_vs_semantic/12mp",
        "throughput_2_workers",
        "batching_worst_vs_batch_1",
        "status_reads_per_second",
        "status_reads_p99_ms",
    ]
    assert by_name["cpu_outside_inference/512px"] == {
        "name": "cpu_outside_inference/512px",
        "measured": 0.9,
        "comparison": "<=",
        "target": 0.2,
        "unit": "× raw inference CPU",
        "met": False,
    }
    assert (
        by_name["throughput_2_workers"]["target"] == 0.85
        and by_name["throughput_2_workers"]["measured"] == 0.8
    )
    assert by_name["status_reads_per_second"]["met"] and not by_name["status_reads_p99_ms"]["met"]
    assert by_name["batching_worst_vs_batch_1"]["met"] and by_name["overhead_p50_ms/m"]["met"]


def test_the_table_shows_each_target_and_verdict_from_the_targets_object():
    table = markdown(RESULTS)
    assert "| ≤ 0.2 × raw inference CPU | **no** |" in table
    assert "| ≤ 1 × raw inference CPU | **no** |" in table
    assert "| ≥ 0.85 × raw | **no** |" in table
    assert "| ≥ 500 req/s, < 100 ms at p99 | **no** |" in table  # one of the row's two targets failed
    assert "| ≤ 50 ms at p50 | yes |" in table
    # Five rows fail (the two CPU rows, the 12 MP cutout, two workers, status reads: one of
    # its two targets) and two pass, as the targets object says target by target.
    assert table.count("| **no** |") == 5 and table.count("| yes |") == 2
    assert [each["met"] for each in targets(RESULTS)].count(False) == 5


def test_a_run_without_the_newer_figures_still_makes_its_table():
    old = {k: v for k, v in RESULTS.items() if k not in ("cpu_outside_inference", "batching")}
    table = markdown(old)
    assert "CPU outside inference" not in table and "batching" not in table
    assert [each["name"] for each in targets(old)][:2] == ["overhead_p50_ms/m", "cutout_vs_semantic/12mp"]


def test_the_stack_floor_is_a_row_read_against_the_512_px_raw_inference_with_no_target():
    table = markdown(RESULTS)
    row = next(line for line in table.splitlines() if line.startswith("| floor of the stack"))
    assert "read: web 1.5, redis 0.2, database 0.1 ms; task: worker 2.2, redis 0.3 ms" in row
    assert "4.3 ms in all = 0.11 × the 512 px raw inference CPU" in row  # 4.3 / 40
    assert row.endswith("|  |  |") and not [each for each in targets(RESULTS) if "floor" in each["name"]]


def test_a_batching_run_the_graph_refused_has_no_row_and_no_target():
    refused = {**RESULTS, "batching": {"model": "m", "measured": False, "why": "batch 2: cannot reshape"}}
    assert "batching" not in markdown(refused)
    assert "batching_worst_vs_batch_1" not in [each["name"] for each in targets(refused)]


def test_the_readme_table_is_replaced_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold table\n{END}\nrest\n")
    update_readme(readme, "| new |\n")
    assert readme.read_text() == f"intro\n{START}\n| new |\n{END}\nrest\n"
