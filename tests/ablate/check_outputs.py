"""check_outputs.py — checks the files of a trained `rxc ablate` run.

usage: check_outputs.py OUT DRY_JSON EPOCHS NAME [TRAINED_JSON]
  OUT         the ablation's --out directory
  DRY_JSON    `rxc ablate --dry-run --json` for the same cardinalities (the variants)
  TRAINED_JSON optional `rxc ablate --json` output of the trained run

Every number in ablation.csv is recomputed here from the variant's own run
directory (metrics.jsonl, written by the trainer): best = max val_acc,
final = the last epoch's val_acc and val_loss, time = the sum of seconds.
"""
import csv
import json
import math
import os
import sys
import xml.etree.ElementTree as ET

import harness


def close(a, b):
    return abs(a - b) <= 1e-5 * max(1.0, abs(b))


def main():
    out, dry, epochs, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    trained_json = sys.argv[5] if len(sys.argv) > 5 else None
    variants = json.load(open(dry))
    problems = []
    try:
        rows = list(csv.DictReader(open(os.path.join(out, "ablation.csv"))))
    except OSError as ex:
        harness.failed(f"{name}_csv", ex)
        return
    if len(rows) != len(variants):
        problems.append(f"{len(rows)} csv rows for {len(variants)} variants")
    expect = {}
    for v, r in zip(variants, rows):
        c, d = v["cardinality"], v["width"]
        for k in ("cardinality", "width", "params", "macs"):
            if int(r[k]) != v[k]:
                problems.append(f"C={c}: csv {k} {r[k]} != {v[k]}")
        if int(r["group_width"]) != c * d or int(r["epochs"]) != epochs:
            problems.append(f"C={c}: group_width {r['group_width']} epochs {r['epochs']}")
        run = os.path.join(out, f"c{c}_d{d}")
        try:
            m = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
        except OSError as ex:
            problems.append(f"C={c}: {ex}")
            continue
        if len(m) != epochs:
            problems.append(f"C={c}: {len(m)} epochs in metrics.jsonl, expected {epochs}")
            continue
        best = max(e["val_acc"] for e in m)
        want = {"best_val_acc": best, "final_val_acc": m[-1]["val_acc"], "final_val_loss": m[-1]["val_loss"],
                "seconds": sum(e["seconds"] for e in m)}
        expect[c] = want
        for k, w in want.items():
            got = float(r[k])
            tol = 1e-3 if k == "seconds" else 1e-5  # csv: %.3f seconds, %.6g otherwise
            if abs(got - w) > tol * max(1.0, abs(w)):
                problems.append(f"C={c}: csv {k} {got} != {w} from metrics.jsonl")
        if not (0 <= best <= 1):
            problems.append(f"C={c}: best val acc {best} outside [0, 1]")
        if not os.path.exists(os.path.join(run, "ablation_done.json")):
            problems.append(f"C={c}: no ablation_done.json")
    harness.check(f"{name}_csv_matches_variant_runs", not problems, problems)

    md = open(os.path.join(out, "ablation.md")).read().splitlines()
    table = [l for l in md if l.startswith("| ") and l[2].isdigit()]
    ok = len(table) == len(variants) and all(l.split("|")[1].strip() == str(v["cardinality"]) for l, v in zip(table, variants))
    harness.check(f"{name}_markdown_table", ok, md)

    try:
        root = ET.parse(os.path.join(out, "ablation.svg")).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        texts = [t.text for t in root.iter(f"{ns}text")]
        need = ["accuracy vs cardinality", "validation accuracy", "training loss"] + \
               [f"{v['cardinality']}x{v['width']}d" for v in variants]
        missing = [n for n in need if n not in texts]
        # one marker per variant on the cardinality panel (best and final), plus the curves' markers
        circles = len(root.findall(f".//{ns}circle"))
        if missing or circles < 2 * len(variants):
            raise ValueError(f"missing texts {missing}, {circles} markers")
        harness.passed(f"{name}_plot")
    except Exception as ex:  # noqa: BLE001
        harness.failed(f"{name}_plot", ex)

    if trained_json:
        try:
            got = json.load(open(trained_json))
            bad = [g for g in got if g["cardinality"] in expect and
                   not close(g["best_val_acc"], expect[g["cardinality"]]["best_val_acc"])]
            if len(got) != len(variants) or bad or not all("width" in g and "params" in g and "macs" in g for g in got):
                raise ValueError(f"{got}")
            harness.passed(f"{name}_json_with_results")
        except Exception as ex:  # noqa: BLE001
            harness.failed(f"{name}_json_with_results", ex)



if __name__ == "__main__":
    main()
