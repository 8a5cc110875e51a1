#!/usr/bin/env python3
"""Check the custody record of an unzipped custody bundle, with Python's standard library only.

Usage: python3 verify_custody.py [BAG_DIR]   (default: the folder this script is in)

Checks that every event in data/custody/ledger.jsonl matches its hash, that each event links to
the one before it (events that concern other evidence appear only as their hashes; in a release,
host names, OS users and paths appear only as commitments), that the last event is the ledger
head written in bag-info.txt, and that every evidence file listed in data/custody/items.jsonl has
the SHA-256 the ledger recorded for it. Exit 0 if all holds, else 1 naming every problem. (The
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


def main(bag):
    problems = []
    head = None
    for line in open(os.path.join(bag, "bag-info.txt"), encoding="utf-8"):
        if line.startswith("Custody-Ledger-Head:"):
            head = line.split(":", 1)[1].strip()
    events, prev, seq = {}, "0" * 64, 0
    for n, line in enumerate(open(os.path.join(bag, "data/custody/ledger.jsonl"), encoding="utf-8"), 1):
        record = json.loads(line)
        if "omitted" in record:
            stub = record["omitted"]
            if stub["seq"] != seq + 1:
                problems.append(f"ledger line {n}: event {stub['seq']} follows event {seq}")
            prev, seq = stub["hash"], stub["seq"]
            continue
        ev = record["event"]
        digest = hashlib.sha256(PREFIX + canonical(committed(ev)).encode("utf-8")).hexdigest()
        if ev["seq"] != seq + 1:
            problems.append(f"ledger line {n}: event {ev['seq']} follows event {seq}: events missing or reordered")
        if ev["prev"] != prev:
            problems.append(f"ledger line {n}: event {ev['seq']} does not link to the event before it")
        if digest != record["hash"]:
            problems.append(f"ledger line {n}: event {ev['seq']} does not match its hash: it was edited")
        events[ev["seq"]] = ev
        prev, seq = record["hash"], ev["seq"]
    if head != f"{seq}:{prev}":
        problems.append(f"the ledger excerpt ends at {seq}:{prev}, not at the head in bag-info.txt ({head})")
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
    print(f"OK: {len(events)} events checked, chained to head {seq}:{prev}; every evidence file matches its event")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))))
