"""Targets met or missed, the Markdown section of docs/benchmarks.md and the PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import redis_cost
from bench.stats import fmt

BEGIN = "<!-- bench:results:begin (written by python -m bench) -->"
END = "<!-- bench:results:end -->"
KIB = 1024


def targets(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured figure, met) for every target of issues 6, 15 and 18."""
    rows: list[tuple[str, str, bool]] = []
    paused = res["submit_paused"]
    rps, p99 = paused["rps"]["median"], paused["p99_ms"]["median"]
    rows.append(("submit, consumption paused >= 2,600 req/s", f"{rps:,.0f} req/s", rps >= 2600))
    rows.append(("submit, consumption paused: p99 <= 25 ms", f"{p99:.1f} ms", p99 <= 25))
    rps = res["submit_consuming"]["rps"]["median"]
    rows.append(("submit, worker consuming >= 1,818 req/s", f"{rps:,.0f} req/s", rps >= 1818))
    rps = res["status_read"]["rps"]["median"]
    rows.append(("status read >= 3,900 req/s", f"{rps:,.0f} req/s", rps >= 3900))
    ours = res["drain"]["tasks_per_s"]["median"]
    bare = res["bare_celery"]["drain_per_s"]["median"]
    ratio = res["drain"]["ratio_to_bare"]["median"]
    rows.append(
        (
            "drain over HTTP >= 0.9x bare Celery drain (median of the alternating pairs)",
            f"{ratio:.2f}x (medians {ours:,.0f} / {bare:,.0f} tasks/s)",
            ratio >= 0.9,
        )
    )
    first, last = res["growth"][0], res["growth"][-1]
    for what in ("status", "list"):
        a, b = first[what]["p50_ms"]["median"], last[what]["p50_ms"]["median"]
        rows.append(
            (
                f"{what} p50 at {last['records']:,} records <= 1.2x at {first['records']:,}",
                f"{b:.2f} / {a:.2f} ms = {b / a:.2f}x",
                b <= 1.2 * a,
            )
        )
    per_task = res["drain"]["bytes_per_task"]["median"]
    rows.append(("Redis per finished task <= 1 KiB", f"{per_task:,.0f} B", per_task <= KIB))
    scrape = res["scrape"]["loaded"]["p50_ms"]["median"]
    queued = res["scrape"]["queued"]
    rows.append((f"/metrics scrape <= 10 ms, {queued:,} queued", f"{scrape:.2f} ms", scrape <= 10))
    rss = res["memory"]["api_idle"]["rss_mib"]
    rows.append(("API idle RSS <= 60 MiB", f"{rss:.1f} MiB", rss <= 60))
    ours = redis_cost.median(res["redis_cost"]["ours"], "cpu_us")
    bare = redis_cost.median(res["redis_cost"]["bare"], "cpu_us")
    rows.append(
        (
            "Redis CPU per task <= 1.5x bare Celery's (with a result backend)",
            f"{ours:,.0f} / {bare:,.0f} us = {ours / bare:.2f}x",
            ours <= 1.5 * bare,
        )
    )
    return rows + _live_targets(res["live"])


def _live_targets(live: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Issue 18's: streams pushed, not polled."""
    idle, busy = live["idle"], live["busy"]
    n, above = idle["watchers"], idle["rss_watching_mib"] - idle["rss_idle_mib"]
    allowed = n * 150 / 10_000  # 150 MiB for 10,000
    polled = 2 * n  # what polling every 0.5 s cost Redis
    delay = busy["delay_ms"]
    return [
        (
            f"{n:,} idle event streams: API RSS <= {allowed:,.0f} MiB above idle",
            f"{above:,.0f} MiB ({idle['kib_per_watcher']:.1f} KiB a stream)",
            above <= allowed,
        ),
        (
            f"{n:,} idle event streams: Redis commands/s <= 1 % of polling's {polled:,}",
            f"{idle['redis_commands_per_s']:.2f}",
            idle["redis_commands_per_s"] <= polled / 100,
        ),
        (
            f"change to client, {busy['watchers']:,} streams, {busy['tasks']} changes/s: "
            "p50 <= 5 ms, p99 <= 50 ms",
            f"{delay['p50']:.1f} / {delay['p99']:.1f} ms",
            delay["p50"] <= 5 and delay["p99"] <= 50,
        ),
    ]


def _throughput_table(res: dict[str, Any]) -> list[str]:
    lines = [
        "| HTTP load (wrk, 32 connections) | req/s | p50 ms | p99 ms | non-2xx |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, label in (
        ("submit_paused", "POST /tasks, no worker running (paused)"),
        ("submit_consuming", "POST /tasks, worker consuming"),
        ("status_read", "GET /tasks/{id} of a finished task"),
    ):
        s = res[key]
        lines.append(
            f"| {label} | {fmt(s['rps'])} | {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} "
            f"| {fmt(s['non2xx'])} |"
        )
    return lines


def _ceiling_table(res: dict[str, Any]) -> list[str]:
    d, b, rb = res["drain"], res["bare_celery"], res["redis_benchmark"]
    return [
        "| ceiling and drain | figure |",
        "| --- | --- |",
        f"| drain over HTTP, {d['tasks']:,} no-op tasks, tasks/s | {fmt(d['tasks_per_s'])} |",
        f"| (its submit phase, 32 connections, req/s) | {fmt(d['submit_per_s'])} |",
        f"| bare Celery drain, same tasks count, tasks/s | {fmt(b['drain_per_s'])} |",
        f"| ours / bare, each pair run back to back | {fmt(d['ratio_to_bare'], 2)} |",
        f"| bare Celery `delay()` loop, no worker, submits/s | {fmt(b['submit_per_s'])} |",
        f"| redis-benchmark LPUSH, 32 clients, req/s | {fmt(rb['LPUSH']['rps'])} |",
        f"| redis-benchmark GET, 32 clients, req/s | {fmt(rb['GET']['rps'])} |",
        f"| Redis bytes per finished task (used_memory delta / N) | {fmt(d['bytes_per_task'])} |",
    ]


def _memory_table(res: dict[str, Any]) -> list[str]:
    m = res["memory"]
    rows = [
        ("API, idle", m["api_idle"]),
        ("API, after the paused submits", m["api_after_submits"]),
        ("API, after all HTTP load", m["api_loaded"]),
        ("worker tree, idle", m["worker_idle"]),
        ("worker tree, after load", m["worker_loaded"]),
        ("bare Celery worker tree, idle", res["bare_celery"]["worker_memory_idle"]),
        ("bare Celery worker tree, after load", res["bare_celery"]["worker_memory_loaded"]),
    ]
    lines = ["| process tree | processes | RSS MiB | PSS MiB |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {label} | {v['processes']} | {v['rss_mib']:.1f} | {v['pss_mib']:.1f} |"
        for label, v in rows
    ]
    return lines


def _growth_table(res: dict[str, Any]) -> list[str]:
    lines = [
        "| stored records | Redis MiB | status p50 ms | status p99 ms | list p50 ms "
        "| list p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in res["growth"]:
        s, li = row["status"], row["list"]
        lines.append(
            f"| {row['records']:,} | {row['redis_used_mib']:,.0f} | {fmt(s['p50_ms'], 2)} "
            f"| {fmt(s['p99_ms'], 2)} | {fmt(li['p50_ms'], 2)} | {fmt(li['p99_ms'], 2)} |"
        )
    sc = res["scrape"]
    lines += [
        "",
        "| /metrics scrape | p50 ms | p99 ms |",
        "| --- | --- | --- |",
        f"| none queued | {fmt(sc['empty']['p50_ms'], 2)} | {fmt(sc['empty']['p99_ms'], 2)} |",
        f"| {sc['queued']:,} queued ({sc['message_bytes']} B each) "
        f"| {fmt(sc['loaded']['p50_ms'], 2)} | {fmt(sc['loaded']['p99_ms'], 2)} |",
    ]
    return lines


def _live_table(live: dict[str, Any]) -> list[str]:
    idle, busy, pickup = live["idle"], live["busy"], live["pickup"]
    backlog = pickup["backlog"]

    def ms(s: dict[str, Any]) -> str:
        return f"{s['p50']:.1f} / {s['p99']:.1f} / {s['max']:.1f}"

    return [
        "| live updates and pickup (one run) | figure |",
        "| --- | --- |",
        f"| {idle['watchers']:,} idle streams on {idle['tasks']:,} tasks: API RSS before / "
        f"with them | {idle['rss_idle_mib']:.1f} / {idle['rss_watching_mib']:.1f} MiB "
        f"({idle['kib_per_watcher']:.1f} KiB a stream) |",
        f"| the same: opened in; Redis commands/s while idle | {idle['opened_s']:.1f} s; "
        f"{idle['redis_commands_per_s']:.2f} |",
        f"| {busy['watchers']:,} streams on {busy['tasks']} running tasks, each reporting every "
        f"second: events received in {busy['seconds']:.0f} s | {busy['events']:,} "
        f"({busy['events_per_s']:,.0f}/s; {busy['unmatched']} not matched to a publish) |",
        f"| change (script's publish) to client, p50 / p99 / max ms | {ms(busy['delay_ms'])} |",
        f"| pickup, idle worker (prefork 2), {pickup['idle']['count']} probes in turn: submit "
        f"to STARTED p50 / p99 / max ms | {ms(pickup['idle'])} |",
        f"| pickup of top-priority probes behind a backlog of {backlog['size']:,} (queued "
        f"while probing: {backlog['queued_while_probing'][0]:,} then "
        f"{backlog['queued_while_probing'][1]:,}), p50 / p99 / max ms "
        f"| {ms(backlog['top_priority'])} |",
        f"| pickup of a probe of the backlog's priority, queued behind it "
        f"| {backlog['same_priority_ms'] / 1000:.1f} s |",
    ]


def _profile_lines(res: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, label in (
        ("profile_submit", "API during POST /tasks (paused)"),
        ("profile_status", "API during GET /tasks/{id}"),
        ("profile_drain", "worker tree during a drain"),
    ):
        if key not in res:
            continue
        p = res[key]
        lines += ["", f"py-spy, {label}: {p['samples']:,} samples; top self time:", ""]
        lines += [f"- {pct:.1f}% {name}" for name, pct in p["self"][:12]]
    return lines


def markdown(res: dict[str, Any], command: str) -> str:
    mc = res["machine"]
    cfg = res["config"]
    versions = ", ".join(f"{k} {v}" for k, v in mc["packages"].items())
    lines = [
        BEGIN,
        "",
        f"Run of {mc['date']}, `{command}`, {res['elapsed_seconds'] / 60:.1f} min"
        f"{' (--quick sizes)' if cfg['quick'] else ''}. "
        f"Each figure: median (min-max) of {cfg['repeats']} repetitions "
        f"({cfg['drain_pairs']} pairs for the drains).",
        "",
        f"- machine: {mc['cpu']}, {mc['cores']} cores, {mc['memory_gib']} GiB, {mc['os']}, "
        f"Linux {mc['kernel']}",
        f"- Python {mc['python']}; {mc['redis_server']}; {mc['wrk']}",
        f"- {versions}",
        f"- wrk: {cfg['wrk_threads']} thread, {cfg['connections']} connections, "
        f"{cfg['wrk_seconds']} s per run after a {cfg['warmup_seconds']} s warm-up; "
        f"growth sizes {', '.join(f'{n:,}' for n in cfg['growth_sizes'])}; "
        f"{cfg['queued_messages']:,} queued for the scrape",
        "",
        "| target | measured | |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {t} | {v} | {'met' if ok else '**missed**'} |" for t, v, ok in targets(res)]
    lines += ["", *_throughput_table(res), "", *_ceiling_table(res), "", *_memory_table(res)]
    lines += ["", *_growth_table(res), "", *_live_table(res["live"])]
    lines += ["", redis_cost.report(res["redis_cost"])]
    lines += [*_profile_lines(res), ""]
    lines += [
        "![HTTP throughput](benchmarks/throughput.png)",
        "![drain and ceiling](benchmarks/drain.png)",
        "![latency growth](benchmarks/growth.png)",
        "",
        END,
    ]
    return "\n".join(lines)


def write_section(doc: Path, section: str) -> None:
    """Replace the generated section of the document (or append it)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)


def _bars(ax: Any, labels: list[str], summaries: list[dict[str, Any]], color: str) -> None:
    meds = [s["median"] for s in summaries]
    lo = [s["median"] - s["min"] for s in summaries]
    hi = [s["max"] - s["median"] for s in summaries]
    ax.bar(labels, meds, yerr=[lo, hi], capsize=6, color=color)
    for i, m in enumerate(meds):
        ax.annotate(f"{m:,.0f}", (i, m), ha="center", va="bottom", xytext=(0, 4),
                    textcoords="offset points")  # fmt: skip


def plots(res: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    keys = ("submit_paused", "submit_consuming", "status_read")
    labels = ["submit\n(paused)", "submit\n(consuming)", "status read"]
    goals = [2600, 1818, 3900]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    _bars(left, labels, [res[k]["rps"] for k in keys], "#4c72b0")
    for i, goal in enumerate(goals):
        left.hlines(goal, i - 0.4, i + 0.4, colors="#c44e52", linestyles="--")
    left.set_ylabel("requests/s (median, range)")
    left.set_title("HTTP throughput, 32 connections (dashed: target)")
    width = 0.38
    for offset, pct, color in ((-width / 2, "p50_ms", "#55a868"), (width / 2, "p99_ms", "#dd8452")):
        meds = [res[k][pct]["median"] for k in keys]
        right.bar([i + offset for i in range(3)], meds, width, label=pct[:3], color=color)
    right.hlines(25, -0.4, 0.4, colors="#c44e52", linestyles="--")
    right.set_xticks(range(3), labels)
    right.set_ylabel("latency ms (median of runs)")
    right.set_title("wrk latency (dashed: p99 target)")
    right.legend()
    fig.tight_layout()
    fig.savefig(folder / "throughput.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    _bars(
        ax,
        ["kubetasks drain\n(over HTTP)", "bare Celery\ndrain", "bare Celery\ndelay() submit"],
        [
            res["drain"]["tasks_per_s"],
            res["bare_celery"]["drain_per_s"],
            res["bare_celery"]["submit_per_s"],
        ],
        "#8172b2",
    )
    ax.hlines(0.9 * res["bare_celery"]["drain_per_s"]["median"], -0.4, 0.4, colors="#c44e52",
              linestyles="--")  # fmt: skip
    ax.set_ylabel("tasks/s (median, range)")
    ax.set_title(f"{res['drain']['tasks']:,} no-op tasks, prefork 2 (dashed: 0.9x bare)")
    fig.tight_layout()
    fig.savefig(folder / "drain.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = [row["records"] for row in res["growth"]]
    for what, marker in (("status", "o"), ("list", "s")):
        for pct, style in (("p50_ms", "-"), ("p99_ms", ":")):
            ax.plot(sizes, [row[what][pct]["median"] for row in res["growth"]], style,
                    marker=marker, label=f"{what} {pct[:3]}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("stored task records")
    ax.set_ylabel("latency ms (sequential requests)")
    ax.set_title("GET /tasks/{id} and GET /tasks?limit=50 as Redis fills")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "growth.png", dpi=110)
    plt.close(fig)


def save(res: dict[str, Any], doc: Path, folder: Path, command: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    plots(res, folder)
    write_section(doc, markdown(res, command))
