#!/usr/bin/env python3
"""Markdown tables of scripts/gpu_check.sh's benchmark lines (bench.jsonl): for every model, dtype and method, images/s
of mergescope with the fused kernels, mergescope with MERGESCOPE_FUSED=0 (the ATen ops they replace), and eager
PyTorch (scripts/gpu/eager_bench.py), each the median over the rounds, with the rounds beside them.
usage: summarize.py bench.jsonl   (Markdown on stdout; standard library only)
"""
import json
import statistics
import sys


def engine_of(row):
    if row.get("engine") == "mergescope":
        return "ms_fused" if str(row.get("fused")) == "1" else "ms_aten"
    return "eager"


def method_key(method):
    """pitome:ratio=0.9144 -> pitome (mergescope names the matched ratio; eager gets the same spec)."""
    return method.split(":")[0] if method.startswith("pitome") else method


def fmt(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


def main(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    if not rows:
        print("(no benchmark lines)")
        return 0
    table = {}  # (model, dtype, method) -> engine -> [images/s per round]
    specs, gmacs, order = {}, {}, []
    for r in rows:
        key = (r["model"], r.get("run_dtype", r.get("dtype", "fp32")), method_key(r["method"]))
        if key not in table:
            table[key] = {}
            order.append(key)
        table[key].setdefault(engine_of(r), []).append(float(r["images_per_s"]))
        specs.setdefault(key, set()).add(r["method"])
        if "gmacs" in r:
            gmacs[key] = r["gmacs"]
    med = {k: {e: statistics.median(v) for e, v in d.items()} for k, d in table.items()}
    print("| model | dtype | method | GMACs | mergescope fused img/s | mergescope ATen-only img/s | fused / ATen-only | "
          "eager PyTorch img/s | mergescope fused / eager | speed-up vs none (mergescope / eager) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in order:
        m = med[key]
        none = med.get((key[0], key[1], "none"), {})
        f, a, e = m.get("ms_fused"), m.get("ms_aten"), m.get("eager")
        ratio = lambda x, y: None if x is None or y is None or y == 0 else x / y  # noqa: E731
        su_ms, su_e = ratio(f, none.get("ms_fused")), ratio(e, none.get("eager"))
        spec = " / ".join(sorted(specs[key]))
        print(f"| {key[0]} | {key[1]} | {spec} | {fmt(gmacs.get(key), 3)} | {fmt(f)} | {fmt(a)} | "
              f"{fmt(ratio(f, a), 3)}x | {fmt(e)} | {fmt(ratio(f, e), 3)}x | {fmt(su_ms, 2)}x / {fmt(su_e, 2)}x |")
    print()
    print("Rounds (images/s per round: mergescope fused | mergescope ATen-only | eager):")
    print()
    print("| model | dtype | method | mergescope fused | mergescope ATen-only | eager |")
    print("|---|---|---|---|---|---|")
    for key in order:
        d = table[key]
        cell = lambda e: ", ".join(f"{v:.1f}" for v in d.get(e, [])) or "—"  # noqa: E731
        print(f"| {key[0]} | {key[1]} | {key[2]} | {cell('ms_fused')} | {cell('ms_aten')} | {cell('eager')} |")
    eager_rows = [r for r in rows if r.get("engine") == "pytorch-eager"]
    if eager_rows:
        r = eager_rows[0]
        print()
        print(f"Eager side: {r.get('backbone')}; torch {r.get('torch')}; reduced blocks' attention: "
              f"{sorted({x.get('attention') for x in eager_rows if x.get('method') != 'none'})}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
