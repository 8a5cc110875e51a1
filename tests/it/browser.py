# What headless Chromium shows of a page: `python3 browser.py CHROMIUM URL SECONDS` prints JSON
# {"text": the page's visible text, "media": [{tag, src, duration, ready, error}]} for every
# <video> and <audio>, once each has fired `loadedmetadata` or `error` (or SECONDS have passed).
# src is the file path the element resolved; duration null when not known (NaN); error null,
# or {code, message} (code 4: MEDIA_ERR_SRC_NOT_SUPPORTED). Chromium is driven over the
# DevTools protocol and is killed, its profile removed, however this ends.
import json, os, shutil, signal, subprocess, sys, tempfile, time
import websocket  # Debian's python3-websocket

chromium, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + seconds

# Runs in the page: settle every media element, then read what it says.
SETTLE_JS = """
(async () => {
  const elements = [...document.querySelectorAll("video, audio")];
  await Promise.all(elements.map(el => new Promise(done => {
    if (el.error || el.readyState >= HTMLMediaElement.HAVE_METADATA) return done();
    el.addEventListener("loadedmetadata", done, {once: true});
    el.addEventListener("error", done, {once: true});
    setTimeout(done, %d);
  })));
  return {
    text: document.body.innerText,
    media: elements.map(el => ({
      tag: el.localName,
      src: el.currentSrc ? decodeURIComponent(new URL(el.currentSrc).pathname) : null,
      duration: Number.isFinite(el.duration) ? el.duration : null,
      ready: el.readyState,
      error: el.error && {code: el.error.code, message: el.error.message},
    })),
  };
})()
"""


def left():
    """Seconds before the deadline; fails past it."""
    s = deadline - time.monotonic()
    if s <= 0:
        sys.exit(f"browser.py: no answer from Chromium within {seconds} s")
    return s


def until(ok):
    """Poll `ok()` until it returns something, or fail at the deadline."""
    while not (found := ok()):
        left()
        time.sleep(0.02)
    return found


profile = tempfile.mkdtemp(prefix="custody-chromium-")
browser = subprocess.Popen(
    [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
     f"--user-data-dir={profile}", "about:blank"],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(os.path.join(profile, "stderr"), "wb"),
    start_new_session=True,  # its own process group: killed whole below, helpers included
)
try:
    # DevToolsActivePort: the port, then the browser's WebSocket path (written once listening).
    def port_file():
        if browser.poll() is not None:
            err = open(os.path.join(profile, "stderr"), errors="replace").read()
            sys.exit(f"browser.py: {chromium} exited with {browser.returncode}:\n{err}")
        try:
            lines = open(os.path.join(profile, "DevToolsActivePort")).read().split("\n")
        except FileNotFoundError:
            return None
        return lines if len(lines) >= 2 and lines[1] else None

    port, path = until(port_file)[:2]
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=left())
    ids = iter(range(1, 1 << 30))

    def call(method, session=None, **params):
        """Send one command; return its result, skipping the events that come before it."""
        n = next(ids)
        msg = {"id": n, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        ws.send(json.dumps(msg))
        while True:
            ws.settimeout(left())
            msg = json.loads(ws.recv())
            if msg.get("id") == n:
                if "error" in msg:
                    sys.exit(f"browser.py: {method}: {msg['error']}")
                return msg["result"]

    # A tab of its own, attached in flat mode (its commands and events carry the sessionId).
    target = call("Target.createTarget", url="about:blank")["targetId"]
    session = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    call("Page.enable", session)
    call("Page.navigate", session, url=url)
    while True:  # the page and everything it loads eagerly
        ws.settimeout(left())
        msg = json.loads(ws.recv())
        if msg.get("method") == "Page.loadEventFired" and msg.get("sessionId") == session:
            break
    wait_ms = max(0, int(left() * 1000) - 500)
    result = call("Runtime.evaluate", session, expression=SETTLE_JS % wait_ms, awaitPromise=True, returnByValue=True)
    if "exceptionDetails" in result:
        sys.exit(f"browser.py: the page script failed: {result['exceptionDetails']}")
    print(json.dumps(result["result"]["value"]))
finally:
    try:
        os.killpg(browser.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    browser.wait()
    shutil.rmtree(profile, ignore_errors=True)
