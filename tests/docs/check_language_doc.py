"""check_language_doc.py TABLES DOC — docs/language.md against the parser's tables.

TABLES is dump_tables' output ("KIND NAME" lines). Both directions are checked:
every name the front end accepts is documented in its section of the
reference, and every op, augmentation op or key that a reference table lists
is one the front end accepts. Prints PASS/FAIL lines (tests/harness.py)."""
import re
import sys

import harness

tables = {}
for line in open(sys.argv[1]):
    kind, name = line.split()
    tables.setdefault(kind, set()).add(name)
doc = open(sys.argv[2]).read()


def section(title):
    """The text of a '## title' or '### title' section, up to the next heading."""
    m = re.search(r"^#{2,3} " + re.escape(title) + r"(?=[ \t]|$).*?$(.*?)(?=^#{2,3} )", doc, re.S | re.M)
    return m.group(1) if m else ""


def table_first_cells(text):
    """Backticked names at the start of each table row's first cell."""
    names = set()
    for row in re.findall(r"^\|([^|]*)\|", text, re.M):
        names.update(re.findall(r"`([a-z_][a-z0-9_]*)[(`]", row))
    names.discard("op")
    names.discard("key")
    return names


def report(name, missing, extra):
    why = []
    if missing:
        why.append("accepted but undocumented: " + ", ".join(sorted(missing)))
    if extra:
        why.append("documented but not accepted: " + ", ".join(sorted(extra)))
    harness.check(name, not why, "; ".join(why))



ops_doc = table_first_cells(section("Primitive ops"))
report("language_doc_primitive_ops", tables["op"] - ops_doc, ops_doc - tables["op"])
builtins_text = section("Builtins (on values)")
documented_builtins = set(re.findall(r"`([a-z_]+)\(", builtins_text))
report("language_doc_builtins", tables["builtin"] - documented_builtins, documented_builtins - tables["builtin"])
aug_doc = table_first_cells(section("augment"))
report("language_doc_augment_ops", tables["transform"] - aug_doc, aug_doc - tables["transform"])
for sec in ("data", "train"):
    keys_doc = table_first_cells(section(sec))
    report(f"language_doc_{sec}_keys", tables[sec] - keys_doc, keys_doc - tables[sec])
train_text = section("train")
for sub in ("optimizer", "schedule", "loss"):
    missing = {k for k in tables[sub] if not re.search(r"\b" + re.escape(k) + r"\b", train_text)}
    report(f"language_doc_{sub}_arguments", missing, set())
