#!/usr/bin/env python3
"""Check the custody record of an unzipped custody bundle, with Python's standard library only.

Usage: python3 verify_custody.py [BAG_DIR]   (default: the folder this script is in)

Checks that every event in data/custody/ledger.jsonl matches its hash, that each event links to
the one before it (events that concern other evidence appear only as their hashes; in a release,
host names, OS users and paths appear only as commitments), that the last event is the ledger
head written in bag-info.txt, and that every evidence file listed in data/custody/items.jsonl has
the SHA-256 the ledger recorded for it; and, for files pushed from a field store, that the field
chain in data/custody/pushed/ is intact up to the head its push event binds and records them.
Exit 0 if all holds, else 1 naming every problem. (The
manifests are checked by `sha256sum -c` or `bagit.py --validate`.)"""
import hashlib
import json
import os
import sys

PREFIX = b"custody-ledger-event-v1\x00"
WITHHELD = b"custody-withheld-v1\x00"


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def committed(ev):
    """The form an event is hashed over: the members a format-2 event lists as private (host,
    OS user, paths) replaced by their salted commitments. A release bundle carries its events in
    this form already (no "private" member, {"withheld_sha256": ...} in their place)."""
    ev = json.loads(json.dumps(ev))
    private = ev.pop("private", None)
    for pointer in (private or {}).get("members", []):
        *path, last = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        node = ev
        for t in path:
            node = node[int(t)] if isinstance(node, list) else node[t]
        key = int(last) if isinstance(node, list) else last
        data = f"{private['salt']}\0{pointer}\0{canonical(node[key])}".encode("utf-8")
        node[key] = {"withheld_sha256": hashlib.sha256(WITHHELD + data).hexdigest()}
    return ev


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def excerpt(path, name, problems):
    """Check one ledger excerpt: each event matches its hash and links to the one before it.
    Returns the events in full by number and the head it ends at (SEQ:HASH)."""
    events, prev, seq = {}, "0" * 64, 0
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        record = json.loads(line)
        if "omitted" in record:
            stub = record["omitted"]
            if stub["seq"] != seq + 1:
                problems.append(f"{name} line {n}: event {stub['seq']} follows event {seq}")
            prev, seq = stub["hash"], stub["seq"]
            continue
        ev = record["event"]
        digest = hashlib.sha256(PREFIX + canonical(committed(ev)).encode("utf-8")).hexdigest()
        if ev["seq"] != seq + 1:
            problems.append(f"{name} line {n}: event {ev['seq']} follows event {seq}: events missing or reordered")
        if ev["prev"] != prev:
            problems.append(f"{name} line {n}: event {ev['seq']} does not link to the event before it")
        if digest != record["hash"]:
            problems.append(f"{name} line {n}: event {ev['seq']} does not match its hash: it was edited")
        events[ev["seq"]] = ev
        prev, seq = record["hash"], ev["seq"]
    return events, f"{seq}:{prev}"


def main(bag):
    problems = []
    head = None
    for line in open(os.path.join(bag, "bag-info.txt"), encoding="utf-8"):
        if line.startswith("Custody-Ledger-Head:"):
            head = line.split(":", 1)[1].strip()
    events, end = excerpt(os.path.join(bag, "data/custody/ledger.jsonl"), "ledger", problems)
    if head != end:
        problems.append(f"the ledger excerpt ends at {end}, not at the head in bag-info.txt ({head})")
    # Field chains (pushed from a field store into the agency's): each ends at the newest head
    # a push event of the excerpt binds, and records every field item a push brought.
    pushes = [ev for ev in events.values() if ev["action"] == "push"]
    pushed_dir = os.path.join(bag, "data/custody/pushed")
    carried = sorted(f[:-6] for f in os.listdir(pushed_dir) if f.endswith(".jsonl")) if os.path.isdir(pushed_dir) else []
    field_count = 0
    for chain in carried:
        name = f"data/custody/pushed/{chain}.jsonl"
        mine = [ev for ev in pushes if ev["params"].get("chain") == chain]
        if not mine:
            problems.append(f"{name}: no push event in the ledger excerpt binds this field chain")
            continue
        field, field_end = excerpt(os.path.join(bag, name), name, problems)
        field_count += len(field)
        bound = max((ev["params"]["head"] for ev in mine), key=lambda h: int(h.split(":")[0]))
        if field_end != bound:
            problems.append(f"{name} ends at {field_end}, not at the head its push event binds ({bound})")
        for ev in mine:
            for out in ev["outputs"]:
                origin = out.get("pushed") or {}
                fev = field.get(origin.get("seq"))
                if fev is not None and "item" in origin and not any(
                    o.get("item") == origin["item"] and o["sha256"] == out["sha256"] for o in fev["outputs"]
                ):
                    problems.append(f"{name}: field event {origin['seq']} does not record field item {origin['item']} "
                                    f"with the SHA-256 push event {ev['seq']} recorded for it")
    for ev in pushes:
        if ev["params"].get("chain") not in carried and any("item" in o for o in ev["outputs"]):
            problems.append(f"event {ev['seq']} binds field chain {ev['params'].get('chain')}, which the bundle does not carry")
    for n, line in enumerate(open(os.path.join(bag, "data/custody/items.jsonl"), encoding="utf-8"), 1):
        item = json.loads(line)
        ev = events.get(item["event"])
        recorded = [o["sha256"] for o in (ev or {}).get("outputs", []) if o.get("item") == item["item"]]
        if recorded != [item["sha256"]]:
            problems.append(f"{item['path']}: event {item['event']} does not record item {item['item']} with this SHA-256")
        path = os.path.join(bag, item["path"])
        if not os.path.isfile(path):
            problems.append(f"{item['path']}: missing")
        elif sha256_file(path) != item["sha256"]:
            problems.append(f"{item['path']}: its SHA-256 differs from the one the ledger recorded")
    for p in problems:
        print(f"FAILED: {p}")
    if problems:
        return 1
    fields = f" and {field_count} field event(s) of {len(carried)} pushed chain(s)" if carried else ""
    print(f"OK: {len(events)} events checked, chained to head {end}{fields}; every evidence file matches its event")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))))
