#!/usr/bin/env python3
"""Re-verify an exported custody ledger (custody export) with Python's standard library only.
Usage: verify_ledger.py LEDGER.jsonl [SEQ:HASH]   Exit 0 if intact, 1 naming the first problem."""
import hashlib, json, sys

def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

def committed(ev):  # format 2: private members (host, OS user, paths) hashed as commitments
    private = ev.pop("private", None)
    for pointer in (private or {}).get("members", []):
        *path, last = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        node = ev
        for t in path:
            node = node[int(t)] if isinstance(node, list) else node[t]
        key = int(last) if isinstance(node, list) else last
        data = f"{private['salt']}\0{pointer}\0{canonical(node[key])}".encode("utf-8")
        node[key] = {"withheld_sha256": hashlib.sha256(b"custody-withheld-v1\0" + data).hexdigest()}
    return ev

def main(path, against=None):
    prev, seq = "0" * 64, 0
    for n, line in enumerate(open(path, encoding="utf-8"), start=1):
        record = json.loads(line)
        ev = record["event"]
        digest = hashlib.sha256(b"custody-ledger-event-v1\x00" + canonical(committed(ev)).encode()).hexdigest()
        if ev["seq"] != seq + 1:
            return f"line {n}: event {ev['seq']} follows event {seq}: events missing or reordered"
        if ev["prev"] != prev:
            return f"line {n}: event {ev['seq']} does not link to the event before it"
        if digest != record["hash"]:
            return f"line {n}: event {ev['seq']} does not match its hash: it was edited"
        prev, seq = digest, ev["seq"]
        if against and int(against[0]) == seq and against[1] != digest:
            return f"event {seq} differs from the head written down ({against[1]})"
    if against and int(against[0]) > seq:
        return f"the ledger ends at event {seq}, before the head written down (event {against[0]})"
    print(f"OK: {seq} events, head {seq}:{prev}")

if __name__ == "__main__":
    problem = main(sys.argv[1], sys.argv[2].split(":") if len(sys.argv) > 2 else None)
    if problem:
        sys.exit(f"FAILED: {problem}")
