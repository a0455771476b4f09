"""fig3_equiv.py — the three Figure 3 forms compute the same function.

Random weights for form (c) (grouped conv) are mapped to forms (a) (paths
summed) and (b) (early concatenation) as the comment in
examples/fig3c_grouped.net documents; `rxc grad` runs one training-mode
forward/backward of the same batch through each, and the outputs, losses and
(mapped back) parameter gradients must agree. Tolerance: 1e-4 relative to
the largest magnitude of each compared tensor (float32 sums in different
orders). With C = 4 (--set cardinality=4) to keep it quick."""
import json, os, struct, subprocess, sys, tempfile

import numpy as np

import harness


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import read_st, write_st  # noqa: E402

RXC = os.environ.get("RXC", "./rxc")
C, D = 4, 4
SETS = ["--set", f"cardinality={C}"]
def params(form):
    r = subprocess.run([RXC, "summary", f"examples/fig3{form}.net", "--json"] + SETS, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[:300])
    return {p["name"]: p["shape"] for p in json.loads(r.stdout)["parameters"]}


def split_name(name):
    """(c) name -> (piece name template or None, axis)."""
    parts = name.split(".")
    if parts[0] == "block1" and parts[1] in ("conv1", "bn1", "conv2", "bn2"):
        return "block1.path{i}." + ".".join(parts[1:]), 0
    if parts[0] == "block1" and parts[1] == "conv3":
        return "block1.path{i}.conv3." + parts[2], 1
    return None, 0


def to_form(wc, form):
    out = {}
    for name, w in wc.items():
        tmpl, axis = split_name(name)
        if tmpl is None or (form == "b_concat" and ".conv3." in tmpl):
            out[name] = w
            continue
        for i in range(C):
            piece = tmpl.format(i=i)
            if w.ndim == 0:
                out[piece] = w
            else:
                out[piece] = np.ascontiguousarray(np.take(w, range(D * i, D * i + D), axis=axis))
    return out


def from_form(g, form, wc_names):
    """Gradients of form (a)/(b) assembled back into (c)'s layout."""
    out = {}
    for name in wc_names:
        tmpl, axis = split_name(name)
        if tmpl is None or (form == "b_concat" and ".conv3." in tmpl):
            if "grad." + name in g:
                out[name] = g["grad." + name]
            continue
        pieces = [g.get("grad." + tmpl.format(i=i)) for i in range(C)]
        if all(p is not None for p in pieces):
            out[name] = np.concatenate(pieces, axis=axis)
    return out


def close(a, b):
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-6)
    return a.shape == b.shape and float(np.abs(a - b).max()) <= 1e-4 * scale


def main():
    rng = np.random.default_rng(0)
    shapes = {f: params(f) for f in ("a_paths", "b_concat", "c_grouped")}
    wc = {}
    for name, shp in shapes["c_grouped"].items():
        if name.endswith("num_batches_tracked"):
            wc[name] = np.array(0, dtype=np.int64)
        elif name.endswith("running_var"):
            wc[name] = rng.uniform(0.5, 1.5, shp).astype(np.float32)
        else:
            fan = int(np.prod(shp[1:])) if len(shp) > 1 else 1
            wc[name] = (rng.standard_normal(shp) / np.sqrt(fan)).astype(np.float32)
    batch = {"x": rng.standard_normal((4, 3, 32, 32)).astype(np.float32),
             "y": rng.integers(0, 10, 4).astype(np.int64)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_st(f"{tmp}/batch.safetensors", batch)
        for form in ("c_grouped", "a_paths", "b_concat"):
            w = wc if form == "c_grouped" else to_form(wc, form)
            if set(w) != set(shapes[form]) or any(list(w[k].shape) != shapes[form][k] for k in w):
                harness.failed(f"fig3_equiv_mapping_{form}", "the documented mapping does not give the file's parameters")
                return
            write_st(f"{tmp}/{form}.safetensors", w)
            r = subprocess.run([RXC, "grad", f"examples/fig3{form}.net", "--batch", f"{tmp}/batch.safetensors",
                                "--init", f"{tmp}/{form}.safetensors", "--device", "cpu", "--out",
                                f"{tmp}/{form}.out.safetensors"] + SETS, capture_output=True, text=True)
            if r.returncode:
                harness.failed(f"fig3_equiv_{form}", f"rxc grad exited {r.returncode}: {r.stderr.strip()[-300:]}")
                return
            results[form] = read_st(f"{tmp}/{form}.out.safetensors")
    ref = results["c_grouped"]
    for form in ("a_paths", "b_concat"):
        got = results[form]
        ok = close(ref["output"], got["output"]) and close(ref["loss"], got["loss"])
        why = "" if ok else f"output/loss differ: loss {ref['loss']} vs {got['loss']}"
        if ok:
            grads = from_form(got, form, list(wc))
            missing = [n for n in wc if "grad." + n in ref and n not in grads]
            bad = [n for n in grads if "grad." + n in ref and not close(ref["grad." + n], grads[n])]
            ok = not missing and not bad and len(grads) >= 10
            why = f"missing {missing[:3]}, differing {bad[:3]}, {len(grads)} compared"
        harness.check(f"fig3_equiv_{form}", ok, why)



main()
