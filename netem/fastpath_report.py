#!/usr/bin/env python3
"""Markdown tables from netem/fastpath's results.csv: one table per path.

Usage: fastpath_report.py results.csv [meta.txt]

Per tool: median over the runs that completed (min-max for goodput) of
goodput, wall time and CPU seconds per GB (1e9 bytes of file) for the sender
(its process tree, ssh client included), the receiver (its process tree,
daemons included), the far sshd (the session's sshd processes), "ends" (the
three added: the copy's own processes) and the whole machine (/proc/stat busy
time during the copy: both ends, the kernel and anything else running);
then each tool against qcp.
"""

import csv
import statistics
import sys


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(x, nd=2):
    return "-" if x != x else f"{x:.{nd}f}"


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    meta = {}
    if len(sys.argv) > 2:
        for line in open(sys.argv[2]):
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    out = []
    if meta:
        out.append(
            f"fast paths, {meta.get('date', '?')}: vfer {meta.get('vfer_commit', '?')}"
            + (f" (built {meta['vfer_build']})" if meta.get("vfer_build") else "")
            + (f" with `{meta['vfer_args']}`" if meta.get("vfer_args") else "")
            + (f"; vfer2: {meta['vfer2']}" if meta.get("vfer2") else "")
            + f"; {meta.get('qcp') or 'no qcp'}"
            + (f" `{meta['qcp_args']}`" if meta.get("qcp_args") else "")
            + f"; scp {meta.get('scp', '')}"
            + (f" `{meta['scp_args']}`" if meta.get("scp_args") else "")
        )
        out.append(
            f"{int(rows[0]['bytes']) / 1e9 if rows else 0:.2f} GB file ({meta.get('data', '?')} data), disk to disk through sshd, "
            f"{meta.get('runs', '?')} run(s) interleaved; {meta.get('cpus', '?')} CPUs, kernel {meta.get('kernel', '?')}"
        )
        out.append("")
    paths = []
    for r in rows:
        if r["path"] not in paths:
            paths.append(r["path"])
    for path in paths:
        pr = [r for r in rows if r["path"] == path]
        tools = []
        for r in pr:
            if r["tool"] not in tools:
                tools.append(r["tool"])
        stats = {}
        for t in tools:
            tr = [r for r in pr if r["tool"] == t]
            ok = [r for r in tr if r["status"] == "ok"]
            gb = int(tr[0]["bytes"]) / 1e9

            def col(name, per_gb=True, src=ok):
                v = [float(r[name]) for r in src if r[name] not in ("", None)]
                return [x / gb for x in v] if per_gb else v

            g = col("goodput_gbit", False)
            send, recv, sshd, mach = (col(c) for c in ("send_cpu_s", "recv_cpu_s", "sshd_cpu_s", "machine_cpu_s"))
            ends = [a + b + c for a, b, c in zip(send, recv, sshd)]
            stats[t] = {
                "runs": f"{len(ok)}/{len(tr)} ok",
                "g": med(g),
                "gmin": min(g) if g else float("nan"),
                "gmax": max(g) if g else float("nan"),
                "wall": med(col("wall_s", False)),
                "send": med(send),
                "recv": med(recv),
                "sshd": med(sshd),
                "ends": med(ends),
                "mach": med(mach),
                "bg": med(col("background_cpu_per_s", False, tr)),
                "mtu": med(col("vfer_path_mtu", False)),
                "data": med(col("vfer_data_gbit", False)),
                "dgps": med(
                    [
                        float(r["vfer_packets_sent"]) / float(r["vfer_seconds"])
                        for r in ok
                        if r["vfer_packets_sent"] and r["vfer_seconds"] and float(r["vfer_seconds"]) > 0
                    ]
                ),
                "loss": med(col("vfer_loss_rate", False)),
            }
        q = stats.get("qcp")
        out.append(f"### {path}")
        out.append("")
        out.append(
            "| tool | runs | Gbit/s (min-max) | wall s | CPU-s/GB send | recv | far sshd | ends | machine | goodput ÷ qcp | machine CPU ÷ qcp |"
        )
        out.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for t in tools:
            s = stats[t]
            rg = s["g"] / q["g"] if q and q["g"] == q["g"] and q["g"] > 0 else float("nan")
            rc = s["mach"] / q["mach"] if q and q["mach"] == q["mach"] and q["mach"] > 0 else float("nan")
            out.append(
                f"| {t} | {s['runs']} | {fmt(s['g'])} ({fmt(s['gmin'])}-{fmt(s['gmax'])}) | {fmt(s['wall'])} "
                f"| {fmt(s['send'])} | {fmt(s['recv'])} | {fmt(s['sshd'])} | {fmt(s['ends'])} | {fmt(s['mach'])} "
                f"| {fmt(rg)} | {fmt(rc)} |"
            )
        out.append("")
        for name in ("vfer", "vfer2"):
            v = stats.get(name)
            if v and v["mtu"] == v["mtu"]:
                out.append(
                    f"{name}: path MTU {v['mtu']:.0f}, data phase {fmt(v['data'])} Gbit/s, "
                    f"{v['dgps'] / 1e3:.0f}k datagrams/s sent, loss {v['loss'] * 100:.2f} %"
                )
            if v and q and q["g"] == q["g"] and q["g"] > 0 and v["g"] == v["g"]:
                out.append(
                    f"{name}/qcp: goodput {v['g'] / q['g']:.2f}x, machine CPU per GB {v['mach'] / q['mach']:.2f}x, "
                    f"ends CPU per GB {v['ends'] / q['ends']:.2f}x"
                )
        bgs = [stats[t]["bg"] for t in tools if stats[t]["bg"] == stats[t]["bg"]]
        if bgs:
            out.append(
                f"background before each copy: median {med(bgs):.2f} busy CPU-s per second (the machine's other work, in 'machine')"
            )
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
