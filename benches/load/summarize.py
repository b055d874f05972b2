#!/usr/bin/env python3
"""Summarises oha JSON results and the server's own latency histogram.

usage: summarize.py throughput RUN_DIR [PREFIX]  (PREFIX-N.json; for "run" also
                                                 metrics-N-{before,after}.txt)
       summarize.py latency RUN_DIR      (rate.json + metrics-rate-{before,after}.txt)
"""
import json
import re
import statistics
import sys
from pathlib import Path

BUCKET = re.compile(
    r'^spreadguard_admission_duration_seconds_bucket\{le="([^"]+)",(?:webhook|endpoint)="mutate"\} (\d+)'
)


def buckets(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        m = BUCKET.match(line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            out[le] = int(m.group(2))
    return out


def server_quantile(before, after, q):
    """Quantile of the requests observed between two scrapes, interpolated in its bucket."""
    b, a = buckets(before), buckets(after)
    bounds = sorted(a)
    counts = [a[le] - b.get(le, 0) for le in bounds]
    total = counts[-1] if counts else 0
    if total == 0:
        return None, 0
    rank = q * total
    prev_le, prev_count = 0.0, 0
    for le, count in zip(bounds, counts):
        if count >= rank:
            if le == float("inf"):
                return prev_le, total
            width = count - prev_count
            frac = (rank - prev_count) / width if width else 1.0
            return prev_le + (le - prev_le) * frac, total
        prev_le, prev_count = le, count
    return bounds[-1], total


def us(seconds):
    return "n/a" if seconds is None else f"{seconds * 1e6:.0f} µs"


def ms(seconds):
    return f"{seconds * 1e3:.3f} ms"


def oha(path):
    d = json.loads(Path(path).read_text())
    s, p = d["summary"], d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    errors = d.get("errorDistribution", {})
    failed = sum(v for k, v in codes.items() if k != "200") + sum(errors.values())
    return s, p, codes, failed


def throughput(run_dir, prefix="run"):
    run_dir = Path(run_dir)
    rates, p99s = [], []
    for run in sorted(run_dir.glob(f"{prefix}-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        n = run.stem.split("-")[1]
        s, p, codes, failed = oha(run)
        before, after = run_dir / f"metrics-{n}-before.txt", run_dir / f"metrics-{n}-after.txt"
        if prefix == "run" and before.exists():
            sq, count = server_quantile(before, after, 0.99)
        else:
            sq, count = None, 0
        rates.append(s["requestsPerSec"])
        if sq is not None:
            p99s.append(sq)
        print(
            f"{prefix} {n}: {s['requestsPerSec']:8.0f} req/s  p50 {ms(p['p50'])}  p99 {ms(p['p99'])}"
            f"  p99.9 {ms(p['p99.9'])}  failed {failed}  server p99 {us(sq)} ({count} observed)"
        )
    if rates:
        print(
            f"{prefix}: throughput median of {len(rates)} runs: {statistics.median(rates):.0f} req/s"
            f" (min {min(rates):.0f}, max {max(rates):.0f});"
            f" server handling p99 median {us(statistics.median(p99s)) if p99s else 'n/a'}"
        )


def latency(run_dir):
    run_dir = Path(run_dir)
    s, p, codes, failed = oha(run_dir / "rate.json")
    sq, count = server_quantile(
        run_dir / "metrics-rate-before.txt", run_dir / "metrics-rate-after.txt", 0.99
    )
    s50, _ = server_quantile(
        run_dir / "metrics-rate-before.txt", run_dir / "metrics-rate-after.txt", 0.5
    )
    print(
        f"fixed rate: {s['requestsPerSec']:.0f} req/s achieved, failed {failed}\n"
        f"  client latency p50 {ms(p['p50'])}  p90 {ms(p['p90'])}  p99 {ms(p['p99'])}"
        f"  p99.9 {ms(p['p99.9'])}  max {ms(s['slowest'])}\n"
        f"  server handling p50 {us(s50)}  p99 {us(sq)} ({count} observed)"
    )


if __name__ == "__main__":
    {"throughput": throughput, "latency": latency}[sys.argv[1]](*sys.argv[2:])
