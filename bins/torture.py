"""The torture run behind bins/torture: crashes (random kills, and kills injected at every fsync,
ledger write and rename), injected I/O faults, concurrency and hostile media against the real
binary, then the checks that nothing acknowledged was lost and nothing wrong passed silently.

  TORTURE_KILLS     ingest/clip/package runs killed with SIGKILL at random moments (default 200)
  TORTURE_PROCS     concurrent writer processes (default 8)
  TORTURE_INGESTS   ingests per process (default 200)
  TORTURE_SEED      random seed (default: time)
  --short           the CI version: 24 kills, 4 x 10 ingests, every hostile file once

Exit 0 when every check holds; 1 naming each failure."""
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

custody = sys.argv[1]
synth = sys.argv[2]
short = "--short" in sys.argv[3:]
kills = 24 if short else int(os.environ.get("TORTURE_KILLS", "200"))
procs = 4 if short else int(os.environ.get("TORTURE_PROCS", "8"))
ingests = 10 if short else int(os.environ.get("TORTURE_INGESTS", "200"))
seed = int(os.environ.get("TORTURE_SEED", str(int(time.time()))))
rng = random.Random(seed)
failures = []
env = dict(os.environ, CUSTODY_EXAMINER="torture", CUSTODY_CONFIG="/nonexistent", NO_COLOR="1")
env.pop("CUSTODY_STORE", None)


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", flush=True)


def run(args, store=None, timeout=120, check=None):
    cmd = [custody] + (["--store", store] if store else []) + args
    # A process killed mid-write can leave half a UTF-8 sequence on its stderr: never let that
    # stop the run.
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace", timeout=timeout)
    if "panicked" in p.stderr or p.returncode not in (0, 1, 2, 3):
        fail(f"`{' '.join(args)}` crashed (exit {p.returncode}): {p.stderr.strip()[:300]}")
    if check is not None and p.returncode != check:
        fail(f"`{' '.join(args)}` exited {p.returncode}, expected {check}: {p.stderr.strip()[:300]}")
    return p


def ledger_events(store):
    db = sqlite3.connect(f"file:{store}/ledger.db?mode=ro", uri=True)
    rows = db.execute("SELECT seq, body FROM events ORDER BY seq").fetchall()
    db.close()
    return [(s, json.loads(b)) for s, b in rows]


def object_shas(store):
    out = set()
    for d, _, fs in os.walk(os.path.join(store, "objects")):
        for f in fs:
            out.add(os.path.basename(d) + f)
    return out


def check_store(store, acknowledged, what):
    p = run(["verify"], store)
    if p.returncode != 0:
        fail(f"{what}: verify failed after the kills: {p.stdout.strip()[-500:]}")
    events = ledger_events(store)
    seqs = [s for s, _ in events]
    if seqs != list(range(1, len(seqs) + 1)):
        fail(f"{what}: event numbers are not contiguous")
    recorded = {o["sha256"] for _, e in events for o in e["outputs"] if o.get("item")}
    present = object_shas(store)
    if recorded - present:
        fail(f"{what}: {len(recorded - present)} event(s) without their object")
    for sha in acknowledged:
        if sha not in recorded or sha not in present:
            fail(f"{what}: an acknowledged item {sha[:12]} is missing")
    leftovers = [n for n in os.listdir(os.path.join(store, "tmp"))] if os.path.isdir(os.path.join(store, "tmp")) else []
    if leftovers:
        fail(f"{what}: leftovers in tmp/ after verify: {leftovers[:5]}")
    return events


def crash_section(work):
    """Commands killed at random moments; afterwards nothing acknowledged is lost."""
    store = os.path.join(work, "crash-store")
    run(["init", store], check=0)
    media = os.path.join(work, "gen", "h264_bframes.mp4")
    p = run(["ingest", media, "--case", "C", "--item", "base", "--json"], store, check=0)
    base = json.loads(p.stdout)["items"][0]["id"] if p.returncode == 0 else "i1"
    acknowledged = set()
    outcomes = {"killed": 0, "finished": 0}
    for n in range(kills):
        kind = rng.choice(["ingest", "clip", "package"])
        if kind == "ingest":
            src = os.path.join(work, f"src-{n}.bin")
            with open(src, "wb") as f:
                f.write(os.urandom(rng.randint(1, 8) << 20))
            args = ["ingest", src, "--case", "C", "--item", f"k{n}", "--json"]
        elif kind == "clip":
            args = ["clip", base, "--from", "00:00:00.500", "--to", f"00:00:0{rng.randint(1, 2)}.500", "--json",
                    "--mode", rng.choice(["copy", "exact"])]
        else:
            args = ["package", base, "--out", os.path.join(work, f"bundle-{n}.zip"), "--json"]
        proc = subprocess.Popen([custody, "--store", store] + args, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace")
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            outcomes["killed"] += 1
        out, err = proc.communicate()
        if "panicked" in err:
            fail(f"{kind} panicked: {err[:300]}")
        if proc.returncode == 0:
            outcomes["finished"] += 1
            doc = json.loads(out)
            for f in doc.get("items", []):
                acknowledged.add(f["sha256"])
            if doc.get("command") == "clip":
                acknowledged.add(doc["sha256"])
        if kind == "package":
            # Nothing half-written under the final name: a bundle that exists verifies.
            zpath = os.path.join(work, f"bundle-{n}.zip")
            if os.path.exists(zpath) and run(["verify", zpath]).returncode != 0:
                fail(f"bundle-{n}.zip exists but does not verify after a kill")
    check_store(store, acknowledged, "crashes")
    print(f"crashes: {kills} runs, {outcomes['killed']} killed, {outcomes['finished']} finished; "
          f"{len(acknowledged)} acknowledged files all present", flush=True)


def concurrency_section(work):
    """Several writers at once: every event lands, the chain is contiguous, nobody sees a lock."""
    store = os.path.join(work, "busy-store")
    run(["init", store], check=0)
    files = []
    for p in range(procs):
        d = os.path.join(work, f"w{p}")
        os.makedirs(d)
        for i in range(ingests):
            path = os.path.join(d, f"f{i}.txt")
            with open(path, "w") as f:
                f.write(f"writer {p} file {i} {rng.random()}\n")
            files.append(path)
    script = "\n".join(
        f"for f in {os.path.join(work, f'w{p}')}/*.txt; do '{custody}' --store '{store}' ingest \"$f\" --case C "
        f"--item \"w{p}-$(basename $f)\" >/dev/null 2>>'{work}/w{p}.err' || echo \"$f $?\" >> '{work}/w{p}.failed'; done &"
        for p in range(procs)) + "\nwait\n"
    start = time.time()
    subprocess.run(["bash", "-c", script], env=env, check=True)
    elapsed = time.time() - start
    for p in range(procs):
        err_path = os.path.join(work, f"w{p}.err")
        errs = open(err_path).read() if os.path.exists(err_path) else ""
        if "locked" in errs.lower():
            fail(f"writer {p} saw a locked database: {errs[:300]}")
        if os.path.exists(os.path.join(work, f"w{p}.failed")):
            fail(f"writer {p} had failed ingests: {open(os.path.join(work, f'w{p}.failed')).read()[:300]}")
    events = check_store(store, set(), "concurrency")
    if len(events) != 1 + procs * ingests:
        fail(f"concurrency: {len(events)} events, expected {1 + procs * ingests}")
    print(f"concurrency: {procs} x {ingests} ingests in {elapsed:.1f} s, {len(events)} events, chain contiguous",
          flush=True)


def flipped(data):
    """40 bytes flipped inside the media data (the container's index left whole)."""
    out = bytearray(data)
    for k in range(40):
        out[int(len(out) * 0.2) + k * 1500] ^= 0xFF
    return bytes(out)


def hostile_section(work):
    """Hostile media: no panic, no hang, a clear error; decode errors counted, never passed over."""
    store = os.path.join(work, "hostile-store")
    run(["init", store], check=0)
    good = open(os.path.join(work, "gen", "h264_bframes.mp4"), "rb").read()
    # A file outside the evidence that hostile playlists point at; no command may open it.
    canary = os.path.join(work, "canary-outside-the-evidence.ts")
    shutil.copy(os.path.join(work, "gen", "h264_bframes.mp4"), canary)
    cases = {
        "empty.mp4": b"",
        "random.mp4": os.urandom(200_000),
        "truncated.mp4": good[: len(good) // 3],
        "bitflipped.mp4": flipped(good),
        "playlist.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{canary}\n#EXTINF:10,\n{canary}\n#EXT-X-ENDLIST\n".encode(),
        "concat.txt": f"ffconcat version 1.0\nfile '{canary}'\nfile 'canary-outside-the-evidence.ts'\n".encode(),
        "huge-dims.y4m": b"YUV4MPEG2 W65535 H65535 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x00" * 1000,
    }
    for name, data in cases.items():
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(data)
        p = run(["ingest", path, "--case", "H", "--item", name, "--deep", "--json"], store, timeout=120)
        if p.returncode != 0:
            fail(f"hostile {name}: ingest should keep any file as evidence, exited {p.returncode}: {p.stderr[:200]}")
            continue
        item = json.loads(p.stdout)["items"][0]["id"]
        for args in (["still", item, "--at", "frame:1"], ["clip", item, "--from", "0", "--to", "1"],
                     ["redact", item, "--box", "0,0,10,10", "--reason", "x"]):
            q = run(args, store, timeout=120)
            if q.returncode == 0 and name in ("empty.mp4", "random.mp4", "playlist.m3u8", "concat.txt"):
                fail(f"hostile {name}: `{args[0]}` succeeded on a file that holds no usable media")
            if q.returncode != 0 and not q.stderr.strip():
                fail(f"hostile {name}: `{args[0]}` failed without a message")
        if name == "bitflipped.mp4":
            media = json.loads(p.stdout)["items"][0].get("media", {})
            if not (media.get("deep") or {}).get("errors"):
                fail(f"hostile bitflipped.mp4: the deep probe did not count its decode errors: {media}")
    # Playlists and concat files must not make FFmpeg open what they point at.
    if shutil.which("strace"):
        for name in ("playlist.m3u8", "concat.txt"):
            trace = os.path.join(work, f"{name}.strace")
            subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", trace, custody, "--store", store,
                            "ingest", os.path.join(work, name), "--case", "H", "--item", f"again-{name}", "--deep"],
                           env=env, capture_output=True, timeout=120)
            opened = [l for l in open(trace) if "canary-outside-the-evidence" in l]
            if opened:
                fail(f"hostile {name}: a file it points at was opened: {opened[0].strip()}")
    else:
        fail("strace is missing (bins/setup installs it): cannot check what hostile files make FFmpeg open")
    check_store(store, set(), "hostile")
    print(f"hostile media: {len(cases)} files, no panic, no hang, every refusal explained; "
          "playlists and concat files opened nothing they point at", flush=True)


def names_section(work):
    """Hostile names and trees: newlines, invalid UTF-8, leading dashes, NFC/NFD twins, 255-byte
    names, a symlink loop, a FIFO. All regular files are taken in, the rest skipped with a word."""
    store = os.path.join(work, "names-store")
    run(["init", store], check=0)
    tree = os.path.join(work, "names").encode()
    os.makedirs(tree)
    names = [b"line\nbreak.txt", b"bad\xff\xfeutf8.txt", b"-leading-dash.txt", "caf\u00e9.txt".encode(),
             "cafe\u0301.txt".encode(), b"x" * 251 + b".txt", b"back\\slash.txt", b"tab\tname.txt"]
    for i, n in enumerate(names):
        with open(os.path.join(tree, n), "wb") as f:
            f.write(f"evidence {i}\n".encode())
    os.symlink(b"loop", os.path.join(tree, b"loop"))
    os.mkfifo(os.path.join(tree, b"fifo"))
    p = subprocess.run([custody, "--store", store, "ingest", tree, "--case", "N", "--item", "1", "--json"], env=env,
                       capture_output=True, timeout=120)
    if p.returncode != 0 or b"panicked" in p.stderr:
        fail(f"hostile names: ingest exited {p.returncode}: {p.stderr[:300]!r}")
        return
    doc = json.loads(p.stdout)
    if len(doc["items"]) != len(names):
        fail(f"hostile names: {len(doc['items'])} items ingested, expected {len(names)}")
    if b"fifo" not in p.stderr:
        fail("hostile names: the FIFO was not reported as skipped")
    # Odd names given as arguments: after `--`, a name that starts with a dash is a file, and
    # one with a line break or invalid UTF-8 is taken byte for byte.
    kept = {i["sha256"] for i in doc["items"]}
    for n, name in enumerate([b"-leading-dash.txt", b"line\nbreak.txt", b"bad\xff\xfeutf8.txt"]):
        arg = os.path.join(tree, name)
        q = subprocess.run([custody, "--store", store, "--json", "ingest", "--case", "N", "--item", f"arg{n}", "--",
                            name if name.startswith(b"-") else arg], env=env, capture_output=True, timeout=120,
                           cwd=tree)
        if q.returncode != 0:
            fail(f"hostile names: ingest of the argument {name!r} exited {q.returncode}: {q.stderr[:300]!r}")
            continue
        items = json.loads(q.stdout)["items"]
        if len(items) != 1:
            fail(f"hostile names: the argument {name!r} gave {len(items)} items")
        kept |= {i["sha256"] for i in items}
    check_store(store, kept, "names")
    print(f"hostile names: {len(names)} odd names taken in (and three more given as arguments after --), "
          f"a symlink loop recorded and a FIFO skipped", flush=True)


def traced(args, store, inject, trace):
    """custody under strace, with one syscall fault injected (strace's --inject syntax)."""
    cmd = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={trace}", "-e", f"inject={inject}",
           custody, "--store", store] + args
    return subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace", timeout=120)


def ledger_ok(store, what):
    db = sqlite3.connect(f"file:{store}/ledger.db?mode=ro", uri=True)
    verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    if verdict != "ok":
        fail(f"{what}: SQLite integrity_check says {verdict!r}")


def commit_kill_section(work):
    """SIGKILL delivered at every fsync, write to the ledger and rename of an ingest (strace
    fault injection): the kill lands inside the store's commit and SQLite's own. After each,
    the ledger is consistent, verify passes, and the same ingest then succeeds."""
    store = os.path.join(work, "commit-store")
    run(["init", store], check=0)
    cap = 12 if short else 60
    kills_done, after_commit, acknowledged = 0, 0, set()
    for sc in ["fsync", "fdatasync", "pwrite64", "write", "rename", "renameat2", "unlink"]:
        for k in range(1, cap + 1):
            src = os.path.join(work, f"commit-{sc}-{k}.bin")
            with open(src, "wb") as f:
                f.write(os.urandom(rng.randint(1, 4) << 16))
            args = ["ingest", src, "--case", "K", "--item", f"{sc}{k}", "--json"]
            p = traced(args, store, f"{sc}:signal=KILL:when={k}", sc)
            if "panicked" in p.stderr:
                fail(f"ingest with a kill at {sc} #{k} panicked: {p.stderr[:300]}")
            if p.returncode == 0:
                # Fewer than k such calls: this syscall is done with.
                for f in json.loads(p.stdout)["items"]:
                    acknowledged.add(f["sha256"])
                break
            kills_done += 1
            what = f"kill at {sc} #{k}"
            ledger_ok(store, what)
            check_store(store, acknowledged, what)
            committed = any(e["action"] == "ingest" and e.get("exhibit") == f"{sc}{k}" for _, e in ledger_events(store))
            if committed:
                # Killed after its commit: the ingest stands (verify passed on it above), and the
                # same command now says the exhibit already holds the file.
                after_commit += 1
                run(args, store, check=2)
                continue
            again = run(args, store)
            if again.returncode != 0:
                fail(f"{what}: the same ingest then failed (exit {again.returncode}): {again.stderr.strip()[:300]}")
            else:
                for f in json.loads(again.stdout)["items"]:
                    acknowledged.add(f["sha256"])
    check_store(store, acknowledged, "commit kills")
    print(f"commit kills: {kills_done} ingests killed at an fsync, ledger write or rename ({after_commit} after "
          f"their commit, which stood); ledger consistent and verify passes after each, and every ingest killed "
          f"before its commit then succeeded", flush=True)

    # The same for every command that derives outputs: a copy clip, a smart clip (re-encoded
    # head and tail, copied middle), a package, a redaction, a
    # rewrap of a raw stream and a batch job (whose steps commit one by one). Their outputs are
    # made by FFmpeg's muxers or the bundle writer, staged, and committed the same way.
    gen = os.path.join(work, "gen")
    ids = {}
    for key, name in [("video", "h264_bframes.mp4"), ("raw", "dvr_ch01.h264")]:
        p = run(["ingest", os.path.join(gen, name), "--case", "K", "--item", key, "--json"], store, check=0)
        if p.returncode != 0:
            return
        ids[key] = json.loads(p.stdout)["items"][0]["id"]
    video, raw = ids["video"], ids["raw"]

    def derived_args(kind, sc, k):
        if kind == "clip":
            return ["clip", video, "--from", "00:00:00.500", "--to", "00:00:01.500", "--json"]
        if kind == "smart":
            return ["clip", video, "--from", "frame:10", "--to", "frame:60", "--mode", "smart", "--json"]
        if kind == "package":
            return ["package", video, "--out", os.path.join(work, f"commit-package-{sc}-{k}.zip"), "--json"]
        if kind == "redact":
            return ["redact", video, "--box", "10,10,40,30@0.5-1.0", "--reason", f"torture {sc} {k}", "--json"]
        if kind == "rewrap":
            return ["rewrap", raw, "--json"]
        job = os.path.join(work, f"commit-job-{sc}-{k}.yaml")
        with open(job, "w") as f:
            # A new job name each time: a job already done would skip every step.
            f.write(f"job: torture {sc} {k}\nsteps:\n  - id: c\n    clip: {{item: {video}, from: \"0.5\", to: \"1.5\"}}\n"
                    f"  - still: {{item: c, at: [\"frame:3\"]}}\n  - rewrap: {{item: {raw}}}\n")
        return ["batch", job, "--json"]

    def digests_in(value):
        if isinstance(value, dict):
            for key, v in value.items():
                if key == "sha256" and isinstance(v, str) and len(v) == 64:
                    yield v
                else:
                    yield from digests_in(v)
        elif isinstance(value, list):
            for v in value:
                yield from digests_in(v)

    cap = 6 if short else 40
    derived_kills = {}
    for kind in ["clip", "smart", "package", "redact", "rewrap", "batch"]:
        derived_kills[kind] = 0
        for sc in ["fsync", "pwrite64", "rename", "renameat2", "unlink"]:
            for k in range(1, cap + 1):
                args = derived_args(kind, sc, k)
                p = traced(args, store, f"{sc}:signal=KILL:when={k}", sc)
                if "panicked" in p.stderr:
                    fail(f"{kind} with a kill at {sc} #{k} panicked: {p.stderr[:300]}")
                if p.returncode == 0:
                    # Fewer than k such calls: this syscall is done with. The items it reported
                    # (not the bundle, which is a file outside the store) must stay.
                    items = {o["sha256"] for _, e in ledger_events(store) for o in e["outputs"] if o.get("item")}
                    acknowledged.update(set(digests_in(json.loads(p.stdout))) & items)
                    break
                derived_kills[kind] += 1
                what = f"{kind} killed at {sc} #{k}"
                ledger_ok(store, what)
                check_store(store, acknowledged, what)
                out = args[args.index("--out") + 1] if "--out" in args else None
                if out and os.path.exists(out) and run(["verify", out]).returncode != 0:
                    fail(f"{what}: {os.path.basename(out)} stands under its final name but does not verify")
    check_store(store, acknowledged, "commit kills (clip, smart clip, package, redact, rewrap, batch)")
    print("commit kills: " + ", ".join(f"{n} {kind}" for kind, n in derived_kills.items()) +
          " commands killed at an fsync, ledger write or rename; ledger consistent and verify passes after each, "
          "every output acknowledged before stays, no bundle half-written under its name", flush=True)


def call_number(args, store, syscall, wanted, at_least=1):
    """Which call of `syscall`, counted in the thread that makes it (as strace's `when=` counts),
    is the first one `wanted(fd_path, line)` picks, in a dry run of custody under strace."""
    log = os.path.join(os.path.dirname(store), "dry-run.strace")
    subprocess.run(["strace", "-f", "-qq", "-o", log, "-e", f"trace=openat,{syscall}", custody, "--store", store] + args,
                   env=env, capture_output=True, timeout=120)
    fds, counts = {}, {}
    with open(log, errors="replace") as f:
        for line in f:
            # strace pads the thread id to five columns: split on any run of spaces.
            pid, _, call = line.strip().partition(" ")
            call = call.lstrip()
            if call.startswith("openat(") and " = " in call:
                ret = call.rsplit(" = ", 1)[1].split()[0]
                if ret.isdigit():
                    fds[(pid, int(ret))] = call.split('"')[1] if '"' in call else ""
            elif call.startswith(f"{syscall}("):
                counts[pid] = counts.get(pid, 0) + 1
                m = re.match(r"\w+\((\d+)", call)
                fd = m.group(1) if m else ""
                path = fds.get((pid, int(fd)), "") if fd.isdigit() else ""
                # Threads share descriptors: look the fd up under any pid.
                path = path or next((p for (_, n), p in fds.items() if str(n) == fd), "")
                if wanted(path, call) and counts[pid] >= at_least:
                    return pid, counts[pid]
    return None, None


def fault_section(work):
    """Faults injected into system calls: a read error on the source, a failed fsync, a full
    disk while the ledger is written. Each exits 3 naming what failed, records nothing, leaves
    nothing behind, and the same command succeeds once the fault is gone."""
    store = os.path.join(work, "fault-store")
    run(["init", store], check=0)
    # A source below 16 MiB is read with plain reads, a larger one through a memory map, whose
    # bytes the kernel copies into the store (copy_file_range) and the digests read in place.
    plain, src = os.path.join(work, "fault-source-small.bin"), os.path.join(work, "fault-source.bin")
    for path, size in ((plain, 8 << 20), (src, 16 << 20)):
        with open(path, "wb") as f:
            f.write(os.urandom(size))
    # Where each fault goes is found in a dry run into a scratch store: the 50th read of the
    # small source (3 MiB in), the 5th kernel copy from the large one, the copy's fsync, the
    # first write to the ledger's WAL, its first fsync.
    dry = os.path.join(work, "fault-dry", "store")
    os.makedirs(os.path.dirname(dry))
    # (what, source, syscall, errno, which call, calls later, its per-thread count at least,
    # words the message must hold)
    cases = [
        ("a read error on the source", plain, "read", "EIO", lambda path, _: path == plain, 50, 1, [plain, "offset"]),
        ("a read error in the kernel's copy of a mapped source", src, "copy_file_range", "EIO",
         lambda path, _: path == src, 4, 1, [src, "offset", "source media"]),
        ("a failed fsync of the copy", src, "fsync", "EIO", lambda path, _: "partial" in path, 0, 1, ["sync"]),
        ("a full disk while the ledger is written", src, "pwrite64", "ENOSPC", lambda path, _: path.endswith("-wal"),
         0, 1, ["ledger"]),
        # strace counts calls per thread and injects into every thread whose count reaches N:
        # the copy is fsynced on a thread of its own (its first and only fsync), so the ledger's
        # fsync is taken where the main thread has made more than one.
        ("a failed fsync of the ledger", src, "fsync", "EIO", lambda path, _: path.endswith("-wal"), 0, 2, ["ledger"]),
    ]
    for n, (what, source, syscall, errno, wanted, later, at_least, words) in enumerate(cases):
        before = len(ledger_events(store))
        args = ["ingest", source, "--case", "F", "--item", str(n)]
        shutil.rmtree(dry, ignore_errors=True)
        run(["init", dry], check=0)
        _, when = call_number(args, dry, syscall, wanted, at_least)
        if when is None:
            fail(f"{what}: the dry run made no such {syscall} call")
            continue
        p = traced(args, store, f"{syscall}:error={errno}:when={when + later}", syscall)
        if p.returncode != 3:
            fail(f"{what}: exit {p.returncode}, expected 3: {p.stderr.strip()[:300]}")
        missing = [w for w in words if w.lower() not in p.stderr.lower()]
        if missing:
            fail(f"{what}: the message does not say {missing}: {p.stderr.strip()[:300]}")
        if len(ledger_events(store)) != before:
            fail(f"{what}: an event was recorded")
        leftovers = os.listdir(os.path.join(store, "tmp"))
        if leftovers:
            fail(f"{what}: left {leftovers[:3]} in tmp/")
        if object_shas(store) - {o["sha256"] for _, e in ledger_events(store) for o in e["outputs"]}:
            fail(f"{what}: an object stands that no event records")
        ledger_ok(store, what)
        again = run(args, store)
        if again.returncode != 0:
            fail(f"{what}: the same ingest then failed (exit {again.returncode}): {again.stderr.strip()[:300]}")
        print(f"fault: {what}: exit 3 ({p.stderr.strip().splitlines()[-1][:160] if p.stderr.strip() else ''})",
              flush=True)
    check_store(store, set(), "faults")


def main():
    work = tempfile.mkdtemp(prefix="custody-torture.")
    try:
        subprocess.run([synth, os.path.join(work, "gen")], check=True, stdout=subprocess.DEVNULL)
        print(f"torture: seed {seed}, {'short' if short else 'full'} run in {work}", flush=True)
        crash_section(work)
        commit_kill_section(work)
        fault_section(work)
        concurrency_section(work)
        hostile_section(work)
        names_section(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"torture: {len(failures)} failure(s) (seed {seed})")
        return 1
    print("torture: every check held")
    return 0


sys.exit(main())
