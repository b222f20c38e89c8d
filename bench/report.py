"""bench/results.md and the README's copy of it: each figure, its target, whether it is met."""

import re

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def markdown(results):
    m = results["machine"]
    lines = [
        f"Measured {m['date']} at commit `{m['commit']}` on {m['cores']} cores ({m['cpu']}), "
        f"in {results['seconds']} s{' (quick run: too few rounds to trust)' if results['quick'] else ''}.",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
    ]

    def row(figure, measured, target="", met=None):
        lines.append(
            f"| {figure} | {measured} | {target} | {'' if met is None else ('yes' if met else '**no**')} |"
        )

    for model, o in results["overhead"].items():
        row(
            f"overhead per job, `{model}`: full path p50 (p95) vs raw inference p50 (p95)",
            f"{o['full']['p50']} ({o['full']['p95']}) ms vs {o['raw']['p50']} ({o['raw']['p95']}) ms: "
            f"+{o['overhead_p50_ms']} ms",
            "≤ 50 ms at p50",
            o["overhead_p50_ms"] <= 50,
        )
    t = results["throughput"]
    for workers in ("1_worker", "2_workers"):
        run = t[workers]
        ratio = run["jobs_per_second"] / run["raw"]
        target = "≥ 0.9 × raw" if workers == "2_workers" else ""
        threads = (
            f"{run['threads']} inference thread each" if run["threads"] else "all cores as inference threads"
        )
        row(
            f"throughput, `{t['model']}`, {workers.replace('_', ' ')}, {threads} ({t['jobs']} jobs through the API)",
            f"{run['jobs_per_second']} jobs/s = {ratio:.2f} × raw ({run['raw']} images/s in one process, "
            "measured before and after)",
            target,
            ratio >= 0.9 if target else None,
        )
    for model, r in results["residency"].items():
        row(
            f"residency, `{model}`: load, segment, discard per request vs resident (median)",
            f"{r['per_request']['p50']} ms vs {r['resident']['p50']} ms: {r['ratio']} ×",
            "≥ 10 ×",
            r["ratio"] >= 10,
        )
    heavy = results.get("residency_heavy")
    for model, r in (heavy or {}).get("models", {}).items():
        row(
            f"residency, `{model}`: PixelLib's tutorial (load both heavy models, segment, discard, "
            f"per request) vs resident (median of {heavy['rounds']}; {heavy['weights']})",
            f"{r['per_request']['p50'] / 1000:.1f} s vs {r['resident']['p50'] / 1000:.1f} s: {r['ratio']} ×",
            "≥ 10 ×",
            r["ratio"] >= 10,
        )
    for model, b in results.get("batching", {}).items():
        rates = ", ".join(f"{r['images_per_second']} at {r['batch']}" for r in b["rows"])
        how = "one invoke per batch" if b["one_pass"] else "the model takes batch 1 only: a loop"
        row(f"batched inference, `{model}`, raw engine on CPU ({how})", f"images/s by batch size: {rates}")
    api = results["api_under_load"]
    reads, submits = api["status_reads"], api["submissions"]
    row(
        f"status reads, 50 concurrent clients (gunicorn 2 × 8 threads; {reads['tool']})",
        f"{reads['requests_per_second']} req/s, p99 {reads['p99_ms']} ms, {reads['errors']} errors",
        "≥ 500 req/s, p99 < 100 ms",
        reads["requests_per_second"] >= 500 and reads["p99_ms"] < 100,
    )
    uncached = api.get("status_reads_uncached")
    if uncached:
        row(
            "status reads as above with the status cache off (STATUS_CACHE_SECONDS=0: a full read each time)",
            f"{uncached['requests_per_second']} req/s, p99 {uncached['p99_ms']} ms, {uncached['errors']} errors",
        )
    row(
        f"submissions, 50 concurrent clients ({submits['tool']})",
        f"{submits['requests_per_second']} req/s, p99 {submits['p99_ms']} ms, {submits['errors']} errors",
    )
    for p in results["payload"]:
        row(
            f"payload, {p['size'][0]}x{p['size'][1]} photo: MAX JSON `seg_map` (513 px / full size) vs `mask.png`",
            f"{p['max_json_513_bytes']:,} / {p['max_json_full_bytes']:,} B vs {p['mask_png_bytes']:,} B: "
            f"{p['max_json_full_bytes'] / p['mask_png_bytes']:.0f} × smaller at full size",
        )
    mem = results["memory_mb"]
    heavy_worker = (
        f"{mem['heavy_worker']} MB (`{mem['heavy_worker_model']}`, after a job)"
        if mem["heavy_worker"]
        else "not measured"
    )
    row(
        "resident memory: web (gunicorn, 2 processes), light worker (main + pool process), heavy worker",
        f"{mem['web']} MB, {mem['light_worker']} MB, {heavy_worker}",
    )
    return "\n".join(lines) + "\n"


def update_readme(path, table):
    text = path.read_text()
    if START not in text:
        return
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    path.write_text(pattern.sub(lambda _: f"{START}\n{table}{END}", text))
