#!/usr/bin/env python3
"""Re-verify an exported custody ledger (custody export) with Python's standard library only.
Usage: verify_ledger.py LEDGER.jsonl [SEQ:HASH]   Exit 0 if intact, 1 naming the first problem."""
import hashlib, json, sys

def main(path, against=None):
    prev, seq = "0" * 64, 0
    for n, line in enumerate(open(path, encoding="utf-8"), start=1):
        record = json.loads(line)
        ev = record["event"]
        body = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(b"custody-ledger-event-v1\x00" + body.encode("utf-8")).hexdigest()
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
