#!/usr/bin/env python3
"""Summarises a soak run (benches/soak.sh).

usage: summarize.py minute RUN_DIR M          one line for minute M
       summarize.py total RUN_DIR MINUTES RATE   the verdict; exit 1 when it fails
"""
import json
import re
import sys
from pathlib import Path

STREAMS = ["mutate", "validate", "fresh"]
BUCKET = re.compile(
    r'^spreadguard_admission_duration_seconds_bucket\{le="([^"]+)",(?:webhook|endpoint)="(\w+)"\} (\d+)'
)
RELOAD = re.compile(r'^spreadguard_reloads_total\{what="(\w+)",result="(\w+)"\} (\d+)')


def oha(path):
    d = json.loads(Path(path).read_text())
    codes = d.get("statusCodeDistribution", {})
    errors = d.get("errorDistribution", {})
    requests = sum(codes.values()) + sum(errors.values())
    failed = sum(v for k, v in codes.items() if k != "200") + sum(errors.values())
    return d, requests, failed, errors


def buckets(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        m = BUCKET.match(line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            out[le] = out.get(le, 0) + int(m.group(3))  # both endpoints
    return out


def server_quantile(before, after, q):
    b, a = buckets(before), buckets(after)
    bounds = sorted(a)
    counts = [a[le] - b.get(le, 0) for le in bounds]
    total = counts[-1] if counts else 0
    if not total:
        return None
    rank = q * total
    prev_le, prev_count = 0.0, 0
    for le, count in zip(bounds, counts):
        if count >= rank:
            if le == float("inf"):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width else 1.0)
        prev_le, prev_count = le, count
    return bounds[-1]


def reloads(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        m = RELOAD.match(line)
        if m:
            out[(m.group(1), m.group(2))] = int(m.group(3))
    return out


def ms(s):
    return "n/a" if s is None else f"{s * 1e3:.2f}"


def minute(run, m):
    parts, total, failed = [], 0, 0
    for s in STREAMS:
        d, n, f, errors = oha(run / f"minute-{m}-{s}.json")
        total += n
        failed += f
        p = d["latencyPercentiles"]
        parts.append(f"{s} p50 {ms(p['p50'])} p99 {ms(p['p99'])}")
        if errors:
            parts.append(f"{s} errors {errors}")
    sp99 = server_quantile(run / f"metrics-{m}-before.txt", run / f"metrics-{m}-after.txt", 0.99)
    print(
        f"minute {m:2}: {total} requests ({total / 60:.0f}/s), {failed} failed; "
        + "; ".join(parts)
        + f"; server p99 {ms(sp99)} ms"
    )


def rss(run):
    rows = []
    for line in (run / "rss.txt").read_text().splitlines():
        t, _, kb = line.partition(" ")
        if kb.strip():
            rows.append((float(t), int(kb)))
    return rows


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def total(run, minutes, rate):
    started = float((run / "started.txt").read_text())
    requests = failed = 0
    for m in range(1, minutes + 1):
        for s in STREAMS:
            _, n, f, _ = oha(run / f"minute-{m}-{s}.json")
            requests += n
            failed += f
    end1 = float((run / "minute-1.end").read_text())
    samples = rss(run)
    base = [kb for t, kb in samples if abs(t - end1) <= 6] or [samples[0][1]]
    last_t = samples[-1][0]
    tail = [kb for t, kb in samples if t >= last_t - 10]
    after1 = [kb for t, kb in samples if t >= end1]
    base_kb, end_kb = median(base), median(tail)
    max_kb = max(after1 or [kb for _, kb in samples])
    growth = (end_kb - base_kb) / base_kb * 100
    first = reloads(run / "metrics-1-before.txt")
    final = reloads(run / "metrics-final.txt")
    delta = {k: v - first.get(k, 0) for k, v in final.items()}
    rotations = len((run / "rotations.txt").read_text().splitlines())
    policy_swaps = len((run / "reloads.txt").read_text().splitlines())
    achieved = requests / (minutes * 60)
    print(
        f"total: {requests} requests in {minutes} min ({achieved:.0f}/s of {rate}/s), {failed} failed"
    )
    print(
        f"resident memory: {base_kb / 1024:.1f} MiB after minute 1, {end_kb / 1024:.1f} MiB at the end "
        f"({growth:+.1f}%), peak {max_kb / 1024:.1f} MiB"
    )
    print(
        f"certificate: {rotations} symlink swaps, reloads ok {delta.get(('certificate', 'success'), 0)}, "
        f"failed {delta.get(('certificate', 'failure'), 0)}; policy: {policy_swaps} swaps, reloads ok "
        f"{delta.get(('policy', 'success'), 0)}, failed {delta.get(('policy', 'failure'), 0)}"
    )
    log = (run / "server.log").read_text().splitlines()
    warned = [line for line in log if " WARN " in line or " ERROR " in line]
    print(f"server log: {len(warned)} warnings or errors" + (f", e.g. {warned[0]}" if warned else ""))
    problems = []
    if failed:
        problems.append(f"{failed} failed requests")
    if achieved < 0.95 * rate:
        problems.append(f"only {achieved:.0f} req/s")
    if growth >= 5:
        problems.append(f"memory grew {growth:.1f}%")
    if delta.get(("certificate", "failure"), 0) or delta.get(("policy", "failure"), 0):
        problems.append("a reload failed")
    if rotations and not delta.get(("certificate", "success"), 0):
        problems.append("no certificate reload was observed")
    if policy_swaps and not delta.get(("policy", "success"), 0):
        problems.append("no policy reload was observed")
    print("PASS" if not problems else "FAIL: " + ", ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    run = Path(sys.argv[2])
    if sys.argv[1] == "minute":
        minute(run, int(sys.argv[3]))
    else:
        sys.exit(total(run, int(sys.argv[3]), int(sys.argv[4])))
