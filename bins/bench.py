"""The benchmark behind bins/bench: each custody command against the reference tools, in one
run, on the same bytes in the page cache; reports medians and ratios against the targets."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

custody = sys.argv[1]
mib = int(os.environ.get("BENCH_MIB", "1024"))
runs = int(os.environ.get("BENCH_RUNS", "5"))
base = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="custody-bench.")
os.makedirs(base, exist_ok=True)
src = os.path.join(base, "evidence.bin")


def run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def timed(setup, cmd, cleanup=None):
    if setup:
        setup()
    # Every command starts from the same state: the previous command's writeback finished,
    # the page cache emptied where we may (root), and the evidence read back into it.
    os.sync()
    if os.environ.get("BENCH_DROP_CACHES"):
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("1\n")
        except OSError:
            pass
    run(["cat", src])
    time.sleep(0.5)  # let the kernel's own follow-up work (writeback, freeing) settle
    start = time.perf_counter()
    run(cmd, shell=isinstance(cmd, str))
    elapsed = time.perf_counter() - start
    if cleanup:
        cleanup()
    return elapsed


if not os.path.exists(src) or os.path.getsize(src) != mib << 20:
    with open(src, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
run(["cat", src])  # into the page cache

store = os.path.join(base, "store")
copy = os.path.join(base, "copy.bin")


def fresh_store():
    shutil.rmtree(store, ignore_errors=True)
    run([custody, "init", store])


def drop_store():
    shutil.rmtree(store, ignore_errors=True)


def drop_copy():
    if os.path.exists(copy):
        os.remove(copy)


cases = {
    "custody hash (SHA-256 + BLAKE3)": (None, [custody, "hash", src], None),
    "openssl dgst -sha256": (None, ["openssl", "dgst", "-sha256", src], None),
    "sha256sum": (None, ["sha256sum", src], None),
    "b3sum": (None, ["b3sum", "--num-threads", "1", src], None),
    "custody ingest": (fresh_store, [custody, "--store", store, "ingest", src, "--case", "BENCH", "--item", "1"], drop_store),
    "cp, then openssl dgst -sha256": (None, f"cp '{src}' '{copy}' && openssl dgst -sha256 '{copy}'", drop_copy),
}
times = {name: [] for name in cases}
for _ in range(runs):
    for name, (setup, cmd, cleanup) in cases.items():
        times[name].append(timed(setup, cmd, cleanup))
med = {name: statistics.median(t) for name, t in times.items()}

print(f"custody bench: {mib} MiB in the page cache, median of {runs} interleaved runs, {os.cpu_count()} cores")
print(f"{'command':<36} {'median s':>9} {'min s':>7}")
for name, t in times.items():
    print(f"{name:<36} {med[name]:9.3f} {min(t):7.3f}")
print()


def ratio(a, b, target=None):
    r = med[a] / med[b]
    verdict = "" if target is None else f" (target <= {target:.2f}x: {'meets' if r <= target else 'MISSES'})"
    print(f"{a} / {b}: {r:.2f}x{verdict}")


ratio("custody hash (SHA-256 + BLAKE3)", "openssl dgst -sha256", 1.05)
ratio("custody hash (SHA-256 + BLAKE3)", "sha256sum")
ratio("custody hash (SHA-256 + BLAKE3)", "b3sum")
ratio("custody ingest", "cp, then openssl dgst -sha256", 1.0)
if not os.environ.get("BENCH_DIR"):
    shutil.rmtree(base, ignore_errors=True)
