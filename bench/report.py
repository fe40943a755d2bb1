"""The standard benchmark set (`make bench`): ingest and end to end on SQLite and PostgreSQL.

Runs in about 12 minutes, prints every figure as it goes, and rewrites the report section of
docs/performance.md (between its ``bench:report`` markers) with a table of the figures, plus a
latency histogram of the offered-load phase at docs/img/latency-histogram.svg.

    .venv/bin/python -m bench.report [--no-write]
"""

from __future__ import annotations

import argparse
import math
import statistics
from datetime import UTC, datetime

from bench import e2e, ingest
from bench.common import ROOT, calibration, machine

REPORT = ROOT / "docs" / "performance.md"
PICTURE = ROOT / "docs" / "img" / "latency-histogram.svg"
BEGIN, END = "<!-- bench:report:begin -->", "<!-- bench:report:end -->"
STORES = ("sqlite", "postgres")
# -2: an API node and a delivery node on one database (PostgreSQL) or one SQLite file
E2E_STORES = ("sqlite", "sqlite-2", "postgres", "postgres-2")
SMALL_STORES = ("sqlite", "sqlite-2", "postgres-2")  # saturation again with messages of the targets' size


def histogram_svg(series: dict[str, list[float]], title: str) -> str:
    """Log-scale latency histogram (ms), one outlined series per store, as a small SVG."""
    edges = [1.0 * 2 ** (k / 2) for k in range(0, 29)]  # 1 ms .. ~16 s, half-octave bins
    width, height, left, bottom = 720, 300, 60, 40
    plot_w, plot_h = width - left - 20, height - bottom - 40
    counts = {}
    for name, values in series.items():
        bins = [0] * (len(edges) - 1)
        for v in values:
            i = min(len(bins) - 1, max(0, int(2 * math.log2(max(v, 1.0)))))
            bins[i] += 1
        total = max(1, len(values))
        counts[name] = [b / total for b in bins]
    top = max((max(c) for c in counts.values()), default=1.0) or 1.0
    colours = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11">', f'<text x="{left}" y="18" font-size="13">{title}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 20}" y2="{height - bottom}" stroke="#000"/>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{left}" y2="30" stroke="#000"/>']
    bin_w = plot_w / (len(edges) - 1)
    for k in range(0, len(edges), 2):
        x = left + k * bin_w
        label = f"{edges[k]:.0f}" if edges[k] < 1000 else f"{edges[k] / 1000:.0f}k"
        parts.append(f'<text x="{x:.0f}" y="{height - bottom + 14}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">latency, ms (201 to '
                 f'the last recipient\'s webhook; log scale)</text>')
    parts.append(f'<text x="14" y="{30 + plot_h / 2:.0f}" transform="rotate(-90 14 {30 + plot_h / 2:.0f})" '
                 f'text-anchor="middle">share of messages</text>')
    for n, (name, shares) in enumerate(counts.items()):
        colour = colours[n % len(colours)]
        points = []
        for k, share in enumerate(shares):
            y = height - bottom - share / top * plot_h
            points += [f"{left + k * bin_w:.1f},{y:.1f}", f"{left + (k + 1) * bin_w:.1f},{y:.1f}"]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
        parts.append(f'<text x="{width - 160}" y="{40 + 16 * n}" fill="{colour}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ as they are")
    parser.add_argument("--ingest-batches", type=int, default=3)
    args = parser.parse_args()
    speed = calibration()
    print(f"standard benchmarks on {machine()}; {speed}")
    ingest_rows = []
    for store in STORES:
        rates, peak = ingest.run(store, args.ingest_batches, 50_000, None)
        ingest_rows.append((store, statistics.median(rates), max(rates), peak))
    e2e_args = argparse.Namespace(rate=2000, seconds=15, batch=100, saturation_messages=60_000,
                                  saturation_batch=10_000, soak=0, periods=48, database_url=None)
    e2e_rows = {store: e2e.run(store, e2e_args) for store in E2E_STORES}
    # the issue's ~2.6 KB message: the same layout with half a day of periods, saturation only
    small_args = argparse.Namespace(**{**vars(e2e_args), "seconds": 0, "periods": 24})
    for store in SMALL_STORES:
        for f in e2e.run(store, small_args):
            f["phase"] = f"{f['phase']}, {f['size']:,.0f}-byte messages (24 periods)"
            e2e_rows.setdefault(store, []).append(f)

    lines = [BEGIN, "", f"Last `make bench` run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; {speed}.", "",
             "| benchmark | store | figure | peak server memory |", "|---|---|---|---|"]
    for store, median, best, peak in ingest_rows:
        lines.append(f"| ingest, {args.ingest_batches} × 50,000 IF-021 per call | {store} | median **{median:,.0f} "
                     f"msg/s** (best {best:,.0f}) | {peak:,.0f} MB |")
    for store, phases in e2e_rows.items():
        for f in phases:
            if not f.get("delivered"):
                lines.append(f"| end to end, {f['phase']} | {store} | nothing delivered | |")
                continue
            if str(f["phase"]).startswith("offered"):
                figure = (f"p50 {f['p50']:.0f} ms, p90 {f['p90']:.0f} ms, **p99 {f['p99']:.0f} ms**, max "
                          f"{f['max']:.0f} ms (201 to the last webhook); the 201 itself: p50 "
                          f"{f['answer_p50']:.0f} ms, p99 {f['answer_p99']:.0f} ms")
            else:
                figure = (f"**{f['delivered_rate']:,.0f} msg/s** delivered to both recipients "
                          f"({f['offered_rate']:,.0f} msg/s accepted); p99 {f['p99']:.0f} ms; machine CPU "
                          f"{f.get('cpu_us', 0):.0f} µs per message")
            lines.append(f"| end to end, {f['phase']} | {store} | {figure}; missing {f['missing']}, duplicates "
                         f"{f['duplicates']} | {f['peak_mb']:,.0f} MB |")
    lines += ["", "![latency histogram](img/latency-histogram.svg)", "", END]
    section = "\n".join(lines)
    print(section)
    if args.no_write:
        return
    series = {store: list(phases[0]["latencies_ms"]) for store, phases in e2e_rows.items()  # type: ignore[call-overload]
              if phases and phases[0].get("latencies_ms")}
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    PICTURE.write_text(histogram_svg(series, "End to end at 2,000 msg/s offered: latency"), encoding="utf-8")
    text = REPORT.read_text(encoding="utf-8")
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.replace("\n## ", f"\n## The standard set (`make bench`)\n\n{section}\n\n## ", 1)
    REPORT.write_text(text, encoding="utf-8")
    print(f"wrote {REPORT.relative_to(ROOT)} and {PICTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
