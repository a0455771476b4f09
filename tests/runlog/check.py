"""check.py — checks a run directory written by tests/runlog/driver.c.

Everything is read independently of rxc's code: the TFRecord framing and
both CRC-32C checksums with a table-driven CRC written here, the protobuf
Event messages with a small wire-format decoder written here, the CSV with
Python's csv module, the SVG with xml.etree. Where TensorBoard is
installed, its own EventAccumulator reads the same file.

usage: check.py RUN_DIR RESUMED_RUN_DIR MODEL_FILE
Prints PASS/FAIL/SKIP lines.
"""
import csv
import glob
import json
import math
import os
import struct
import sys
import xml.etree.ElementTree as ET

import harness
from harness import check as report


# ---- CRC-32C (Castagnoli), table driven ----
def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(raw):
    """TFRecord framing; raises ValueError on any inconsistency."""
    out, pos = [], 0
    while pos < len(raw):
        if pos + 12 > len(raw):
            raise ValueError(f"truncated header at byte {pos}")
        (n,) = struct.unpack_from("<Q", raw, pos)
        (len_crc,) = struct.unpack_from("<I", raw, pos + 8)
        if masked(raw[pos:pos + 8]) != len_crc:
            raise ValueError(f"length crc mismatch at byte {pos}")
        if pos + 12 + n + 4 > len(raw):
            raise ValueError(f"truncated record at byte {pos}")
        data = raw[pos + 12:pos + 12 + n]
        (data_crc,) = struct.unpack_from("<I", raw, pos + 12 + n)
        if masked(data) != data_crc:
            raise ValueError(f"data crc mismatch at byte {pos}")
        out.append(data)
        pos += 12 + n + 4
    return out


# ---- protobuf wire format ----
def varint(b, i):
    v, shift = 0, 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, i


def fields(b):
    """Yields (field, wire, value); raises on unknown wire types or overruns."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = varint(b, i)
        elif w == 1:
            if i + 8 > len(b):
                raise ValueError("truncated fixed64")
            v, i = b[i:i + 8], i + 8
        elif w == 2:
            n, i = varint(b, i)
            if i + n > len(b):
                raise ValueError("truncated bytes")
            v, i = b[i:i + n], i + n
        elif w == 5:
            if i + 4 > len(b):
                raise ValueError("truncated fixed32")
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"unexpected wire type {w}")
        yield f, w, v


def decode_event(data):
    ev = {"values": []}
    for f, w, v in fields(data):
        if f == 1 and w == 1:
            ev["wall_time"] = struct.unpack("<d", v)[0]
        elif f == 2 and w == 0:
            ev["step"] = v - (1 << 64) if v >= 1 << 63 else v
        elif f == 3 and w == 2:
            ev["file_version"] = v.decode()
        elif f == 5 and w == 2:
            for sf, sw, sv in fields(v):
                if sf != 1 or sw != 2:
                    raise ValueError("Summary: unexpected field")
                val = {}
                for vf, vw, vv in fields(sv):
                    if vf == 1 and vw == 2:
                        val["tag"] = vv.decode()
                    elif vf == 2 and vw == 5:
                        val["simple_value"] = struct.unpack("<f", vv)[0]
                    else:
                        raise ValueError(f"Value: unexpected field {vf}/{vw}")
                ev["values"].append(val)
        else:
            raise ValueError(f"Event: unexpected field {f}/{w}")
    return ev


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected_rows(resumed):
    rows = []
    for ep in (1, 2, 3):
        bump = 0.5 if resumed and ep == 3 else 0.0
        rows.append({
            "epoch": ep, "train_loss": 2.0 / ep + bump, "train_acc": 0.3 * ep,
            "val_loss": None if ep == 2 else 2.5 / ep, "val_acc": 0.25 * ep,
            "lr": 1e-3 / ep, "seconds": 10.0 + ep, "images_per_s": 100.0 * ep})
    return rows


def close(a, b, rel=1e-5):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rel * max(1.0, abs(b))


def check_metrics(run, resumed, name):
    exp = expected_rows(resumed)
    keys = ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]
    try:
        with open(os.path.join(run, "metrics.csv")) as f:
            lines = f.read().splitlines()
        if lines[0] != "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s":
            raise ValueError(f"header {lines[0]!r}")
        rows = list(csv.DictReader(lines))
        if len(rows) != 3:
            raise ValueError(f"{len(rows)} csv rows, expected 3")
        for r, e in zip(rows, exp):
            if int(r["epoch"]) != e["epoch"]:
                raise ValueError(f"epoch {r['epoch']} != {e['epoch']}")
            for k in keys:  # %.6g in the csv: 6 significant digits
                got = None if r[k] == "" else float(r[k])
                if not close(got, e[k], 1e-5):
                    raise ValueError(f"csv epoch {e['epoch']} {k}: {r[k]!r} != {e[k]}")
        report(f"{name}_csv", True)
    except Exception as ex:  # noqa: BLE001 — any problem is a failure of this case
        report(f"{name}_csv", False, str(ex))
    try:
        with open(os.path.join(run, "metrics.jsonl")) as f:
            rows = [json.loads(l) for l in f if l.strip()]
        if len(rows) != 3:
            raise ValueError(f"{len(rows)} json rows, expected 3")
        for r, e in zip(rows, exp):
            for k in ["epoch"] + keys:
                if not close(r[k], e[k], 1e-8):
                    raise ValueError(f"jsonl epoch {e['epoch']} {k}: {r[k]!r} != {e[k]}")
        report(f"{name}_jsonl", True)
    except Exception as ex:  # noqa: BLE001
        report(f"{name}_jsonl", False, str(ex))


def check_events_file(path):
    """Returns the decoded events; raises on any format error."""
    with open(path, "rb") as f:
        raw = f.read()
    return [decode_event(r) for r in read_records(raw)]


def expected_scalars(resumed):
    out = {}
    if not resumed:
        out["train/loss"] = [(s, f32(1.0 / (s + 1))) for s in range(10)]
    for e in expected_rows(resumed):
        if resumed and e["epoch"] < 3:
            continue
        for tag, key in [("epoch/train_loss", "train_loss"), ("epoch/train_acc", "train_acc"),
                         ("epoch/val_loss", "val_loss"), ("epoch/val_acc", "val_acc"),
                         ("epoch/lr", "lr"), ("epoch/images_per_s", "images_per_s")]:
            if e[key] is not None:
                out.setdefault(tag, []).append((e["epoch"], f32(e[key])))
    return out


def check_tfevents(run, resumed, name, exclude=()):
    files = sorted(f for f in glob.glob(os.path.join(run, "events.out.tfevents.*"))
                   if os.path.basename(f) not in exclude)
    try:
        if not files:
            raise ValueError("no events.out.tfevents.* file")
        events = check_events_file(files[-1])
        if events[0].get("file_version") != "brain.Event:2" or events[0]["values"]:
            raise ValueError(f"first event is not the file_version event: {events[0]}")
        got = {}
        for ev in events[1:]:
            if "wall_time" not in ev or "step" not in ev or len(ev["values"]) != 1:
                raise ValueError(f"malformed scalar event {ev}")
            v = ev["values"][0]
            got.setdefault(v["tag"], []).append((ev["step"], v["simple_value"]))
        exp = expected_scalars(resumed)
        if got != exp:
            raise ValueError(f"scalars differ: got {got} expected {exp}")
        report(f"{name}_tfevents_independent_reader", True)
    except Exception as ex:  # noqa: BLE001
        report(f"{name}_tfevents_independent_reader", False, str(ex))
        return
    # The reader must be able to fail: a flipped byte in the data is caught.
    with open(files[-1], "rb") as f:
        raw = bytearray(f.read())
    raw[len(raw) // 2] ^= 0x40
    try:
        read_records(bytes(raw))
        report(f"{name}_tfevents_corruption_detected", False, "a flipped byte went unnoticed")
    except ValueError:
        report(f"{name}_tfevents_corruption_detected", True)
    try:
        from tensorboard.backend.event_processing import event_accumulator  # noqa: PLC0415
    except Exception as ex:  # noqa: BLE001
        harness.skipped(f"{name}_tfevents_tensorboard_reader",
                        f"tensorboard is not installed for {sys.executable} ({ex.__class__.__name__}); "
                        "the independent reader above checked the framing, CRCs and messages")

        return
    try:
        acc = event_accumulator.EventAccumulator(files[-1], size_guidance={"scalars": 0})
        acc.Reload()
        got = {t: [(s.step, s.value) for s in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
        exp = expected_scalars(resumed)
        if got != exp:
            raise ValueError(f"TensorBoard read {got}, expected {exp}")
        report(f"{name}_tfevents_tensorboard_reader", True)
    except Exception as ex:  # noqa: BLE001
        report(f"{name}_tfevents_tensorboard_reader", False, str(ex))


def check_svg(run, name):
    try:
        root = ET.parse(os.path.join(run, "curves.svg")).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        lines = root.findall(f".//{ns}polyline")
        # loss: train (3 points) + val (gap at epoch 2: two 1-point pieces); accuracy: 2 x 3 points
        counts = sorted(len(p.get("points").split()) for p in lines)
        if counts != [1, 1, 3, 3, 3]:
            raise ValueError(f"polyline point counts {counts}, expected [1, 1, 3, 3, 3]")
        texts = [t.text for t in root.iter(f"{ns}text")]
        for want in ("loss", "accuracy", "epoch", "train", "val"):
            if want not in texts:
                raise ValueError(f"no text {want!r} in the figure")
        report(f"{name}_curves_svg", True)
    except Exception as ex:  # noqa: BLE001
        report(f"{name}_curves_svg", False, str(ex))


def main():
    run, resumed_run, model = sys.argv[1:4]
    check_metrics(run, False, "fresh")
    check_tfevents(run, False, "fresh")
    check_svg(run, "fresh")
    try:
        with open(model) as f, open(os.path.join(run, "model.net")) as g:
            same = f.read() == g.read()
        with open(os.path.join(run, "settings.txt")) as f:
            settings_ok = f.read() == "network demo { classes 10 }\n"
        report("model_and_settings_copied", same and settings_ok,
               "model.net differs from the model file" if not same else "settings.txt differs")
    except OSError as ex:
        report("model_and_settings_copied", False, str(ex))
    check_metrics(resumed_run, True, "resumed")
    fresh_files = {os.path.basename(f) for f in glob.glob(os.path.join(run, "events.out.tfevents.*"))}
    check_tfevents(resumed_run, True, "resumed", exclude=fresh_files)
    with open(os.path.join(resumed_run, "log.txt")) as f:
        log = f.read().splitlines()
    report("resumed_log_appended", len(log) == 4 and log[0].startswith("Epoch: 1/3") and log[3].startswith("Epoch: 3/3"),
           f"log.txt has {log}")
    n_files = len(glob.glob(os.path.join(resumed_run, "events.out.tfevents.*")))
    report("resumed_events_new_file", n_files == 2, f"{n_files} event files after resume, expected the old one and a new one")


if __name__ == "__main__":
    main()
