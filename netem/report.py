#!/usr/bin/env python3
"""Turn a netem/bench results directory into results.md and PNG plots.

Usage: netem/report.py RESULTS_DIR

Reads results.csv (one row per transfer) and fairness-*.csv; writes
results.md (median goodput, min-max, efficiency = goodput / (rate x (1 -
loss)), ratio to scp) and, when gnuplot is installed, goodput-vs-loss.png,
goodput-vs-rtt.png and fairness-<cc>.png. Standard library only.
"""

import csv
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

TOOL_ORDER = ["iperf3", "scp", "rsync", "qcp", "vfer", "vfer2", "vferpull", "vferpull2"]


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarize(rows):
    groups = defaultdict(list)
    meta = {}
    for r in rows:
        key = (r["profile"], r["cc"], r["tool"])
        meta[(r["profile"], r["cc"])] = (
            float(r["rate_mbit"] or 0),
            float(r["rtt_ms"] or 0),
            float(r["loss_pct"] or 0),
        )
        groups[key].append(r)
    out = {}
    for key, rs in groups.items():
        done = [r for r in rs if r["status"] in ("ok", "timeout")]
        g = [float(r["goodput_mbit"]) for r in done]
        dp = [float(r["data_mbit"]) for r in done if r.get("data_mbit")]
        qd = [float(r["queue_p90_ms"]) for r in done if r.get("queue_p90_ms")]
        out[key] = {
            "data": statistics.median(dp) if dp else None,
            "queue": statistics.median(qd) if qd else None,
            "n": len(rs),
            "ok": sum(1 for r in rs if r["status"] == "ok"),
            "timeouts": sum(1 for r in rs if r["status"] == "timeout"),
            "failed": sum(1 for r in rs if r["status"] in ("fail", "corrupt")),
            "skipped": all(r["status"] == "skipped" for r in rs),
            "median": statistics.median(g) if g else None,
            "min": min(g) if g else None,
            "max": max(g) if g else None,
        }
    return out, meta


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def table(summary, meta):
    lines = [
        "| profile | cc | tool | median Mbit/s | min-max | efficiency | x scp | data phase Mbit/s | data-phase efficiency | queue p90 ms | runs |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    keys = sorted(
        summary,
        key=lambda k: (
            k[0],
            k[1],
            TOOL_ORDER.index(k[2]) if k[2] in TOOL_ORDER else 99,
        ),
    )
    for profile, cc, tool in keys:
        s = summary[(profile, cc, tool)]
        if s["skipped"]:
            lines.append(f"| {profile} | {cc} | {tool} | skipped | | | | | | | |")
            continue
        rate, _, loss = meta[(profile, cc)]
        ceiling = rate * (1 - loss / 100) if rate else None
        eff = s["median"] / ceiling if (s["median"] is not None and ceiling) else None
        scp = summary.get((profile, cc, "scp"), {}).get("median")
        ratio = s["median"] / scp if (s["median"] is not None and scp) else None
        deff = s["data"] / ceiling if (s["data"] is not None and ceiling) else None
        runs = f"{s['ok']} ok"
        if s["timeouts"]:
            runs += f", {s['timeouts']} timeout"
        if s["failed"]:
            runs += f", {s['failed']} failed"
        lines.append(
            f"| {profile} | {cc} | {tool} | {fmt(s['median'])} | "
            f"{fmt(s['min'])}-{fmt(s['max'])} | {fmt(eff, 2)} | {fmt(ratio, 2)} | "
            f"{fmt(s['data'])} | {fmt(deff, 2)} | {fmt(s['queue'], 0)} | {runs} |"
        )
    return "\n".join(lines)


def gnuplot(script, cwd):
    if not shutil.which("gnuplot"):
        return False
    subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd, check=False)
    return True


def plots(outdir, summary, meta):
    made = []
    ccs = sorted({k[1] for k in summary})
    tools = [t for t in TOOL_ORDER if any(k[2] == t and not summary[k]["skipped"] for k in summary)]
    for axis, idx, label in (("loss", 2, "loss (%)"), ("rtt", 1, "RTT (ms)")):
        dat = os.path.join(outdir, f"goodput-vs-{axis}.dat")
        plot_cmds = []
        with open(dat, "w") as f:
            block = 0
            for cc in ccs:
                for tool in tools:
                    pts = sorted(
                        (meta[(p, c)][idx], s["median"], p)
                        for (p, c, t), s in summary.items()
                        if c == cc and t == tool and s["median"] is not None
                    )
                    if not pts:
                        continue
                    f.write(f"# {tool} {cc}\n")
                    for x, y, p in pts:
                        f.write(f"{x} {y} {p}\n")
                    f.write("\n\n")
                    dash = "" if cc == "bbr" else " dt 2"
                    plot_cmds.append(
                        f"'{os.path.basename(dat)}' index {block} using 1:2 with linespoints lw 2{dash} title '{tool} ({cc})'"
                    )
                    block += 1
        if not plot_cmds:
            continue
        png = f"goodput-vs-{axis}.png"
        script = f"""set terminal pngcairo size 900,560 noenhanced
set output '{png}'
set title 'Median goodput vs {label} (labels: profile)'
set xlabel '{label}'
set ylabel 'goodput (Mbit/s)'
set grid
set key outside right
set logscale y
plot {", ".join(plot_cmds)}
"""
        if gnuplot(script, outdir):
            made.append(png)
    for cc in ccs + ["bbr", "cubic"]:
        fc = os.path.join(outdir, f"fairness-{cc}.csv")
        if not os.path.exists(fc) or f"fairness-{cc}.png" in made:
            continue
        flows = defaultdict(list)
        for r in load(fc):
            if r["second"].startswith("#"):
                continue
            flows[r["flow"]].append((int(float(r["second"])), float(r["goodput_mbit"])))
        dat = os.path.join(outdir, f"fairness-{cc}.dat")
        cmds = []
        with open(dat, "w") as f:
            for i, (flow, pts) in enumerate(sorted(flows.items())):
                f.write(f"# {flow}\n")
                for x, y in sorted(pts):
                    f.write(f"{x} {y}\n")
                f.write("\n\n")
                cmds.append(f"'fairness-{cc}.dat' index {i} using 1:2 with lines lw 2 title '{flow}'")
        png = f"fairness-{cc}.png"
        script = f"""set terminal pngcairo size 900,500 noenhanced
set output '{png}'
set title 'Two flows sharing the shared profile (100 Mbit/s, 50 ms, 1 BDP queue), TCP cc {cc}'
set xlabel 'time (s)'
set ylabel 'goodput (Mbit/s)'
set grid
plot {", ".join(cmds)}
"""
        if cmds and gnuplot(script, outdir):
            made.append(png)
    return made


def fairness_summary(outdir):
    lines = []
    for name in sorted(os.listdir(outdir)):
        if not (name.startswith("fairness-") and name.endswith(".csv")):
            continue
        flows = defaultdict(list)
        for r in load(os.path.join(outdir, name)):
            if r["second"].startswith("#"):
                continue
            t = float(r["second"])
            if 10 <= t <= 30:  # both flows running
                flows[r["flow"]].append(float(r["goodput_mbit"]))
        if flows:
            parts = ", ".join(
                f"{f} {statistics.mean(v):.1f} Mbit/s" for f, v in sorted(flows.items()) if v
            )
            lines.append(f"- {name[:-4]}: mean goodput over seconds 10-30: {parts}")
    return "\n".join(lines)


def timeline_rates(path, span=5.0, step=0.25):
    """Goodput (Mbit/s) per `step` seconds from the start of the command
    until `span` seconds after the first byte reached the server, from a
    timeline-*.csv (so ssh's start-up shows too)."""
    try:
        pts = [(float(r["t"]), int(r["bytes"])) for r in load(path)]
    except (OSError, ValueError, KeyError):
        return []
    first = next((t for t, b in pts if b > 0), None)
    if first is None:
        return []
    out, last = [], (0.0, 0)
    for t, b in pts:
        if t > first + span + 1e-9:
            break
        if t - last[0] >= step - 1e-9:
            out.append((t, (b - last[1]) * 8 / (t - last[0]) / 1e6))
            last = (t, b)
    return out


def startup_plots(outdir):
    """One PNG per profile and cc: goodput of run 1 of every tool that
    copies a file, from its start until 5 s after its first byte."""
    made = []
    groups = defaultdict(dict)
    for name in sorted(os.listdir(outdir)):
        if not (name.startswith("timeline-") and name.endswith("-1.csv")):
            continue
        parts = name[len("timeline-") : -len("-1.csv")].split("-")
        if len(parts) < 3:
            continue
        profile, cc, tool = parts[0], parts[1], "-".join(parts[2:])
        rates = timeline_rates(os.path.join(outdir, name))
        if rates:
            groups[(profile, cc)][tool] = rates
    for (profile, cc), tools in sorted(groups.items()):
        dat = os.path.join(outdir, f"startup-{profile}-{cc}.dat")
        cmds = []
        with open(dat, "w") as f:
            for i, tool in enumerate(sorted(tools, key=lambda t: TOOL_ORDER.index(t) if t in TOOL_ORDER else 99)):
                f.write(f"# {tool}\n")
                for t, r in tools[tool]:
                    f.write(f"{t:.2f} {r:.2f}\n")
                f.write("\n\n")
                cmds.append(f"'{os.path.basename(dat)}' index {i} using 1:2 with steps lw 2 title '{tool}'")
        png = f"startup-{profile}-{cc}.png"
        script = f"""set terminal pngcairo size 900,500 noenhanced
set output '{png}'
set title 'Start of each copy: {profile} ({cc} for TCP), run 1, per 0.25 s, until 5 s after its first byte'
set xlabel 'seconds since the command started (ssh start-up included)'
set ylabel 'goodput (Mbit/s)'
set grid
set key outside right
plot {", ".join(cmds)}
"""
        if gnuplot(script, outdir):
            made.append(png)
    return made


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    outdir = sys.argv[1]
    csv_path = os.path.join(outdir, "results.csv")
    rows = load(csv_path) if os.path.exists(csv_path) else []
    summary, meta = summarize(rows)
    made = plots(outdir, summary, meta) + startup_plots(outdir)
    md = ["# vfer lab results", ""]
    md.append(
        "Goodput = file bytes / wall time of the whole command (ssh start-up "
        "included; iperf3: one TCP flow for 10 s, receiver bytes / duration, the raw TCP capacity reference). Efficiency = median "
        "goodput / (link rate x (1 - loss)). x scp = median / scp's median on "
        "the same profile and congestion control. Timed-out runs count the "
        "bytes that had arrived. Data phase = vfer's own --json goodput "
        "(after the session is up). vfer = push, first time on the path "
        "(--no-path-cache); vfer2 = push on a remembered path (second run); "
        "vferpull / vferpull2 = the same pulled. Queue p90 = the 90th "
        "percentile of the bottleneck queueing delay the copy's data packets "
        "saw (the emulator's histogram; vfer alone on the link)."
    )
    md.append("")
    md.append(table(summary, meta))
    fair = fairness_summary(outdir)
    if fair:
        md += ["", "## Fairness (shared profile)", "", fair]
    vals = sorted(n for n in os.listdir(outdir) if n.startswith("validation-"))
    if vals:
        md += ["", "## Link validation", ""]
        for v in vals:
            with open(os.path.join(outdir, v)) as f:
                body = "".join(line for line in f if not line.startswith("probe "))
            md += ["```", body.strip(), "```"]
    if made:
        md += ["", "## Plots", ""] + [f"![{m}]({m})" for m in made]
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md[:4] + [table(summary, meta)]))
    if fair:
        print(fair)
    return 0


if __name__ == "__main__":
    sys.exit(main())
