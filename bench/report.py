"""bench/results.md and the README's copy of it: each figure, its target, whether it is met.

Each section of the results gives rows of (figure, measured, target, met); `met` is None
for a figure without a target.
"""

import re

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


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
    sections = (_overhead, _cutout, _throughput, _residency, _api_under_load, _payload, _memory)
    for section in sections:
        for figure, measured, target, met in section(results):
            verdict = "" if met is None else ("yes" if met else "**no**")
            lines.append(f"| {figure} | {measured} | {target} | {verdict} |")
    return "\n".join(lines) + "\n"


def _overhead(results):
    for model, o in results["overhead"].items():
        yield (
            f"overhead per job, `{model}`: full path p50 (p95) vs raw inference p50 (p95)",
            f"{o['full']['p50']} ({o['full']['p95']}) ms vs {o['raw']['p50']} ({o['raw']['p95']}) ms: "
            f"+{o['overhead_p50_ms']} ms",
            "≤ 50 ms at p50",
            o["overhead_p50_ms"] <= 50,
        )


def _cutout(results):
    for size, c in results.get("cutout", {}).items():
        target = "≤ 2.5 ×" if size == "12 MP" else ""
        yield (
            f"transparent cutout vs semantic job, `deeplabv3_mnv2_pascal`, {size} photo, through the API "
            "(p50 (p95))",
            f"{c['cutout']['p50']} ({c['cutout']['p95']}) ms vs {c['semantic']['p50']} ({c['semantic']['p95']}) ms: "
            f"{c['ratio']} ×",
            target,
            c["ratio"] <= 2.5 if target else None,
        )
        s = c["steps"]
        yield (
            f"cutout steps at {size}, in process (median)",
            f"refine {s['refine']} ms, decontaminate {s['decontaminate']} ms, matte PNG {s['matte_png']} ms, "
            f"cutout PNG {s['cutout_png']} ms",
            "",
            None,
        )


def _throughput(results):
    t = results["throughput"]
    for workers, target in (("1_worker", ""), ("2_workers", "≥ 0.9 × raw")):
        run = t[workers]
        ratio = run["jobs_per_second"] / run["raw"]
        threads = (
            f"{run['threads']} inference thread each" if run["threads"] else "all cores as inference threads"
        )
        yield (
            f"throughput, `{t['model']}`, {workers.replace('_', ' ')}, {threads} ({t['jobs']} jobs through the API)",
            f"{run['jobs_per_second']} jobs/s = {ratio:.2f} × raw ({run['raw']} images/s in one process, "
            "measured before and after)",
            target,
            ratio >= 0.9 if target else None,
        )


def _residency(results):
    for model, r in results["residency"].items():
        yield (
            f"residency, `{model}`: load, segment, discard per request vs resident (median)",
            f"{r['per_request']['p50']} ms vs {r['resident']['p50']} ms: {r['ratio']} ×",
            "≥ 10 ×",
            r["ratio"] >= 10,
        )
    heavy = results.get("residency_heavy") or {"models": {}}
    for model, r in heavy["models"].items():
        yield (
            f"residency, `{model}`: PixelLib's tutorial (load both heavy models, segment, discard, "
            f"per request) vs resident (median of {heavy['rounds']}; {heavy['weights']})",
            f"{r['per_request']['p50'] / 1000:.1f} s vs {r['resident']['p50'] / 1000:.1f} s: {r['ratio']} ×",
            "≥ 10 ×",
            r["ratio"] >= 10,
        )


def _api_under_load(results):
    api = results["api_under_load"]
    reads = api["status_reads"]
    yield (
        f"status reads, 50 concurrent clients (gunicorn 2 × 8 threads; {reads['tool']})",
        _load(reads),
        "≥ 500 req/s, p99 < 100 ms",
        reads["requests_per_second"] >= 500 and reads["p99_ms"] < 100,
    )
    if "status_reads_uncached" in api:
        yield (
            "status reads as above with the status cache off (STATUS_CACHE_SECONDS=0: a full read each time)",
            _load(api["status_reads_uncached"]),
            "",
            None,
        )
    yield (
        f"submissions, 50 concurrent clients ({api['submissions']['tool']})",
        _load(api["submissions"]),
        "",
        None,
    )


def _load(figures):
    return f"{figures['requests_per_second']} req/s, p99 {figures['p99_ms']} ms, {figures['errors']} errors"


def _payload(results):
    for p in results["payload"]:
        yield (
            f"payload, {p['size'][0]}x{p['size'][1]} photo: MAX JSON `seg_map` (513 px / full size) vs `mask.png`",
            f"{p['max_json_513_bytes']:,} / {p['max_json_full_bytes']:,} B vs {p['mask_png_bytes']:,} B: "
            f"{p['max_json_full_bytes'] / p['mask_png_bytes']:.0f} × smaller at full size",
            "",
            None,
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
        "",
        None,
    )


def update_readme(path, table):
    text = path.read_text()
    if START not in text:
        return
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    path.write_text(pattern.sub(lambda _: f"{START}\n{table}{END}", text))
