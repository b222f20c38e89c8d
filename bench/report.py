"""bench/results.md and the README's copy of it: each figure, its targets, whether they are met.

Each section of the results gives rows of (figure, measured, targets). A target is made
by `target()` and judged there, once: results.json's `targets` list (for scripts) and the
table's target and met columns are both read from the same rows, so they cannot disagree.
"""

import operator
import re

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
COMPARISONS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
SYMBOLS = {"<=": "≤", "<": "<", ">=": "≥", ">": ">"}


def target(name, measured, comparison, value, unit):
    """One target as a script reads it: `measured` `comparison` `value` (in `unit`), and met.

    `measured` is the number as the table shows it (rounded), so that a reader comparing
    the two figures by eye reaches the same verdict.
    """
    return {
        "name": name,
        "measured": measured,
        "comparison": comparison,
        "target": value,
        "unit": unit,
        "met": COMPARISONS[comparison](measured, value),
    }


def rows(results):
    """Every row of the table: (figure, measured, [targets]), in the table's order."""
    sections = (
        _overhead,
        _cpu_outside_inference,
        _stack_floor,
        _cutout,
        _throughput,
        _batching,
        _residency,
        _api_under_load,
        _payload,
        _memory,
    )
    for section in sections:
        yield from section(results)


def targets(results):
    """Every target of the run, each with its measured value and verdict (results.json's `targets`)."""
    return [each for _, _, row_targets in rows(results) for each in row_targets]


def markdown(results):
    m = results["machine"]
    quick = " (quick run: too few rounds to trust)" if results["quick"] else ""
    lines = [
        f"Measured {m['date']} at commit `{m['commit']}` on {m['cores']} cores ({m['cpu']}), "
        f"in {results['seconds']} s{quick}.",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
    ]
    for figure, measured, row_targets in rows(results):
        wanted = ", ".join(_wanted(each) for each in row_targets)
        verdict = "" if not row_targets else ("yes" if all(each["met"] for each in row_targets) else "**no**")
        lines.append(f"| {figure} | {measured} | {wanted} | {verdict} |")
    return "\n".join(lines) + "\n"


def _wanted(each):
    return f"{SYMBOLS[each['comparison']]} {each['target']:g} {each['unit']}"


def _overhead(results):
    for model, o in results["overhead"].items():
        yield (
            f"overhead per job, `{model}`: full path p50 (p95) vs raw inference p50 (p95)",
            f"{o['full']['p50']} ({o['full']['p95']}) ms vs {o['raw']['p50']} ({o['raw']['p95']}) ms: "
            f"+{o['overhead_p50_ms']} ms",
            [target(f"overhead_p50_ms/{model}", o["overhead_p50_ms"], "<=", 50, "ms at p50")],
        )


# CPU outside inference per job, as a share of the raw inference CPU of the same photo.
CPU_OUTSIDE_TARGETS = {"512 px": 0.2, "12 MP": 1}


def _cpu_outside_inference(results):
    cpu = results.get("cpu_outside_inference")
    if not cpu:
        return
    for size, c in cpu["sizes"].items():
        p = c["cpu_ms_per_job"]
        limit = CPU_OUTSIDE_TARGETS.get(size)
        name = f"cpu_outside_inference/{_slug(size)}"
        judged = (
            [] if limit is None else [target(name, c["ratio_to_raw"], "<=", limit, "× raw inference CPU")]
        )
        yield (
            f"CPU outside inference per job, `{cpu['model']}`, {size} photo, {cpu['threads']} inference thread "
            f"({c['jobs']} jobs through the API one at a time; each process tree's CPU from /proc, "
            "less raw Model.infer CPU in process)",
            f"web {p['web']}, worker {p['worker']} ({c['worker_outside_inference_ms']} outside inference), "
            f"database {p['database']}, redis {p['redis']} ms per job: {c['outside_inference_ms']} ms outside "
            f"inference = {c['ratio_to_raw']} × raw inference CPU ({c['raw_inference_cpu_ms']} ms; the worker's "
            f"own inference {c['worker_inference_wall_ms']} ms wall); of all this, idle background "
            f"{c['idle_background_ms']} ms; the benchmark's client, not counted, {c['client_cpu_ms']} ms",
            judged,
        )


def _stack_floor(results):
    f, cpu = results.get("stack_floor"), results.get("cpu_outside_inference")
    if not f or not cpu:  # the floor is read against the 512 px job's raw inference
        return
    read, task = f["status_read_ms"], f["empty_task_ms"]
    raw = cpu["sizes"]["512 px"]["raw_inference_cpu_ms"]
    yield (
        f"floor of the stack: an authenticated status read and a Celery task that does nothing "
        f"({f['requests']} of each; CPU per call, every tree as above)",
        f"read: web {read['web']}, redis {read['redis']}, database {read['database']} ms; task: worker "
        f"{task['worker']}, redis {task['redis']} ms; {f['floor_ms']} ms in all = "
        f"{round(f['floor_ms'] / raw, 2)} × the 512 px raw inference CPU",
        [],
    )


def _slug(size):
    return size.replace(" ", "").lower()  # "12 MP" -> "12mp"


def _cutout(results):
    for size, c in results.get("cutout", {}).items():
        yield (
            f"transparent cutout vs semantic job, `deeplabv3_mnv2_pascal`, {size} photo, through the API "
            "(p50 (p95))",
            f"{c['cutout']['p50']} ({c['cutout']['p95']}) ms vs {c['semantic']['p50']} ({c['semantic']['p95']}) ms: "
            f"{c['ratio']} ×",
            [target(f"cutout_vs_semantic/{_slug(size)}", c["ratio"], "<=", 2.5, "× the semantic job")]
            if size == "12 MP"
            else [],
        )
        s = c["steps"]
        yield (
            f"cutout steps at {size}, in process (median)",
            f"refine {s['refine']} ms, decontaminate {s['decontaminate']} ms, matte PNG {s['matte_png']} ms, "
            f"cutout PNG {s['cutout_png']} ms",
            [],
        )


def _throughput(results):
    t = results["throughput"]
    for workers in ("1_worker", "2_workers"):
        run = t[workers]
        ratio = round(run["jobs_per_second"] / run["raw"], 2)
        threads = (
            f"{run['threads']} inference thread each" if run["threads"] else "all cores as inference threads"
        )
        yield (
            f"throughput, `{t['model']}`, {workers.replace('_', ' ')}, {threads} ({t['jobs']} jobs through the API)",
            f"{run['jobs_per_second']} jobs/s = {ratio:.2f} × raw ({run['raw']} images/s in one process, "
            "measured before and after)",
            [target("throughput_2_workers", ratio, ">=", 0.85, "× raw")] if workers == "2_workers" else [],
        )
    batching = t.get("batching_worker")
    if batching:
        # Batching is for a GPU; on this CPU it must cost nothing against one prefork worker.
        versus = round(batching["jobs_per_second"] / t["1_worker"]["jobs_per_second"], 2)
        batches = ", ".join(f"{count} of {size}" for size, count in batching["batches"].items()) or "none"
        yield (
            f"throughput, `{t['model']}`, 1 batching worker (jobs on threads, BATCH_MAX "
            f"{batching['batch_max']}), all cores as inference threads ({t['jobs']} jobs through the API)",
            f"{batching['jobs_per_second']} jobs/s = {versus:.2f} × 1 worker, "
            f"{batching['jobs_per_second'] / batching['raw']:.2f} × raw; batches: {batches}",
            [target("batching_worker_vs_1_worker", versus, ">=", 0.95, "× 1 worker")],
        )


def _batching(results):
    b = results.get("batching")
    if not b or not b["measured"]:
        return  # a graph that takes batch 1 only: nothing to judge (results.json says why)
    per_batch = ", ".join(f"{row['batch']}: {row['ms_per_photo']} ms" for row in b["rows"])
    yield (
        f"batching, `{b['model']}`, raw engine in process, {b['threads']} inference threads "
        f"({b['photos_per_size']} photos per batch size): ms per photo by batch size",
        f"{per_batch}; the slowest {b['worst_ratio']:.2f} × batch 1",
        [target("batching_worst_vs_batch_1", round(b["worst_ratio"], 2), "<=", 1.05, "× batch 1 per photo")],
    )


def _residency(results):
    # Information, no target: a light model loads in milliseconds, so its ratio says nothing
    # of the service; the heavy models' tutorial comparison is a reference row.
    for model, r in results["residency"].items():
        yield (
            f"residency, `{model}`: load, segment, discard per request vs resident (median)",
            f"{r['per_request']['p50']} ms vs {r['resident']['p50']} ms: {r['ratio']} ×",
            [],
        )
    heavy = results.get("residency_heavy") or {"models": {}}
    for model, r in heavy["models"].items():
        yield (
            f"residency, `{model}`: PixelLib's tutorial (load both heavy models, segment, discard, "
            f"per request) vs resident (median of {heavy['rounds']}; {heavy['weights']})",
            f"{r['per_request']['p50'] / 1000:.1f} s vs {r['resident']['p50'] / 1000:.1f} s: {r['ratio']} ×",
            [],
        )


def _api_under_load(results):
    api = results["api_under_load"]
    reads = api["status_reads"]
    yield (
        f"status reads, 50 concurrent clients (gunicorn 2 × 8 threads; {reads['tool']})",
        _load(reads),
        [
            target("status_reads_per_second", reads["requests_per_second"], ">=", 500, "req/s"),
            target("status_reads_p99_ms", reads["p99_ms"], "<", 100, "ms at p99"),
        ],
    )
    if "status_reads_uncached" in api:
        yield (
            "status reads as above with the status cache off (STATUS_CACHE_SECONDS=0: a full read each time)",
            _load(api["status_reads_uncached"]),
            [],
        )
    yield (
        f"submissions, 50 concurrent clients ({api['submissions']['tool']})",
        _load(api["submissions"]),
        [],
    )


def _load(figures):
    return f"{figures['requests_per_second']} req/s, p99 {figures['p99_ms']} ms, {figures['errors']} errors"


def _payload(results):
    for p in results["payload"]:
        yield (
            f"payload, {p['size'][0]}x{p['size'][1]} photo: MAX JSON `seg_map` (513 px / full size) vs `mask.png`",
            f"{p['max_json_513_bytes']:,} / {p['max_json_full_bytes']:,} B vs {p['mask_png_bytes']:,} B: "
            f"{p['max_json_full_bytes'] / p['mask_png_bytes']:.0f} × smaller at full size",
            [],
        )


def _memory(results):
    mem = results["memory_mb"]
    heavy = (
        f"{mem['heavy_worker']} MB (`{mem['heavy_worker_model']}`, after a job)"
        if mem["heavy_worker"]
        else "not measured"
    )
    yield (
        "resident memory: web (gunicorn, 2 processes), light worker (main + pool process), heavy worker",
        f"{mem['web']} MB, {mem['light_worker']} MB, {heavy}",
        [],
    )


def update_readme(path, table):
    text = path.read_text()
    if START not in text:
        return
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    path.write_text(pattern.sub(lambda _: f"{START}\n{table}{END}", text))
