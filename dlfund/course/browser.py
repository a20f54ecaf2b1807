"""Look at the built book as a reader does: headless Chromium, driven over the DevTools protocol.

:func:`serve` serves a folder on 127.0.0.1 in a thread; :class:`Browser` starts Chromium, and
:meth:`Browser.open` loads a page, waits until its maths is typeset, and returns a :class:`Page` with
what the reader would have seen: console errors, failed or non-local requests, images, maths left as
raw TeX. Chromium resolves no host name but 127.0.0.1, so a page that needs the web shows it as a
failed request instead of loading it. By hand (after ``dlfund book``)::

    python -m dlfund.course.browser runs/book/_build/html units/01-perceptron/01-supervised-workflow.html

Needs Debian's ``chromium`` and the ``websocket-client`` package; nothing else.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",  # Chromium's sandbox refuses to run as root (CI runs as root)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # offline, whatever the machine can reach
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
]

# True once the page has settled: web fonts loaded, MathJax 2 done typesetting (if the page has it);
# false if that takes over SETTLE_S seconds.
SETTLE_S = 20
SETTLED = f"""new Promise(done => {{
  const mathjax = window.MathJax && window.MathJax.Hub
    ? new Promise(r => MathJax.Hub.Register.StartupHook("End", () => {{ r(); }}))  // after the first typesetting
    : Promise.resolve();
  Promise.all([mathjax, document.fonts.ready]).then(() => done(true));
  setTimeout(() => done(false), {SETTLE_S * 1000});
}})"""

# What a reader sees, gathered in the page.
REPORT = """(() => {
  const raw = [];  // TeX delimiters left in the visible text (code and scripts are not prose)
  const skip = "pre, code, script, style, textarea";
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {acceptNode: n =>
    n.parentElement.closest(skip) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  for (let n; (n = walk.nextNode());) {
    const m = n.data.match(/\\\\[([]|\\$\\$/);
    if (m) raw.push(n.data.slice(Math.max(0, m.index - 30), m.index + 50).trim());
  }
  return {
    title: document.title,
    maths: document.querySelectorAll(".MathJax, .MathJax_Display, mjx-container").length,
    raw_maths: raw,
    images: [...document.images].map(i => ({
      src: i.currentSrc || i.src, loaded: i.complete && i.naturalWidth > 0,
      in_output: !!i.closest(".cell_output, .output")})),
  };
})()"""


@dataclass
class Page:
    """One loaded page: what it showed and what went wrong while loading it."""

    url: str
    title: str = ""
    maths: int = 0  # typeset formulas (MathJax output elements)
    raw_maths: list[str] = field(default_factory=list)  # prose where TeX was left untypeset
    images: list[dict[str, Any]] = field(default_factory=list)  # src, loaded, in_output
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)  # requests to any host but the page's own

    @property
    def broken_images(self) -> list[str]:
        return [i["src"] for i in self.images if not i["loaded"]]

    @property
    def figures(self) -> int:
        """Images in cell outputs: the figures a notebook drew."""
        return sum(i["in_output"] for i in self.images)

    def problems(self) -> list[str]:
        """Everything a reader would notice, one line each; empty for a good page."""
        return (
            [f"console: {e}" for e in self.console_errors]
            + [f"failed request: {r}" for r in self.failed_requests]
            + [f"request to another host: {r}" for r in self.external_requests]
            + [f"image not loaded: {s}" for s in self.broken_images]
            + [f"maths not typeset: {t!r}" for t in self.raw_maths]
        )


class Browser:
    """Headless Chromium on a fresh profile; use as a context manager."""

    def __init__(self, executable: Path = CHROMIUM, *, width: int = 1280, height: int = 900, timeout: float = 30.0):
        import websocket  # the test extra's websocket-client

        if not Path(executable).exists():
            raise FileNotFoundError(f"{executable} not found: install Debian's chromium (apt-get install chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self._profile = Path(tempfile.mkdtemp(prefix="dlfund-chromium-"))
        self._proc = subprocess.Popen(
            [str(executable), *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) == 2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Chromium did not start (exit code {self._proc.returncode})")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()
        self._ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=timeout, suppress_origin=True)
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_ws", None) is not None:
            self._ws.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") != self._next_id:
                self._events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"{method}: {reply['error'].get('message')}")
            else:
                return reply.get("result", {})

    def _wait_event(self, method: str, session: str, since: int) -> None:
        """Wait for the event ``method`` of ``session`` (looking at the events kept from index ``since`` on)."""
        deadline = time.monotonic() + self.timeout
        while True:
            if any(e.get("method") == method and e.get("sessionId") == session for e in self._events[since:]):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {self.timeout} s")
            self._events.append(json.loads(self._ws.recv()))

    def open(self, url: str, screenshot: Path | None = None, scroll_to: str | None = None) -> Page:
        """Load ``url`` in a new tab, wait until it has settled, and report what it showed.

        ``screenshot`` writes a PNG of the viewport, scrolled to the first element matching the CSS
        selector ``scroll_to`` when there is one (e.g. the first formula or figure).
        """
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable", session)
            self.send(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=self.width,
                height=self.height,
                deviceScaleFactor=1,
                mobile=False,
            )
            start = len(self._events)
            self.send("Page.navigate", session, url=url)
            self._wait_event("Page.loadEventFired", session, since=start)
            settled = self._evaluate(session, SETTLED)
            page = Page(url=url, **self._evaluate(session, REPORT))
            if not settled:
                page.console_errors.append(f"the page did not settle (fonts, maths) within {SETTLE_S} s")
            self._collect(page, [e for e in self._events[start:] if e.get("sessionId") == session])
            if screenshot is not None:
                if scroll_to:
                    self._evaluate(
                        session,
                        f"document.querySelector({json.dumps(scroll_to)})?.scrollIntoView({{block: 'center'}})",
                    )
                png = self.send("Page.captureScreenshot", session, format="png")["data"]
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(png))
            return page
        finally:
            self.send("Target.closeTarget", targetId=target)
            self._events = [e for e in self._events if e.get("sessionId") != session]

    def _evaluate(self, session: str, expression: str) -> Any:
        result = self.send("Runtime.evaluate", session, expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(
                f"page script failed: {details.get('exception', {}).get('description', details['text'])}"
            )
        return result["result"].get("value")

    @staticmethod
    def _collect(page: Page, events: list[dict[str, Any]]) -> None:
        """Sort the page's events into console errors and failed or external requests."""
        own_host = urlparse(page.url).netloc
        urls: dict[str, str] = {}  # request id -> URL
        for e in events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Network.requestWillBeSent":
                urls[p["requestId"]] = p["request"]["url"]
            url = urls.get(p.get("requestId"), "") or p.get("entry", {}).get("url", "")
            if urlparse(url).path == "/favicon.ico":
                continue  # Chromium asks every site for its icon on its own: no page asked for it
            if method == "Network.requestWillBeSent":
                if urlparse(url).scheme in ("http", "https", "ws", "wss") and urlparse(url).netloc != own_host:
                    page.external_requests.append(url)
            elif method == "Network.loadingFailed" and not p.get("canceled"):
                page.failed_requests.append(f"{url} ({p.get('errorText')})")
            elif method == "Network.responseReceived" and p["response"]["status"] >= 400:
                page.failed_requests.append(f"{url} (HTTP {p['response']['status']})")
            elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                page.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif method == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                page.console_errors.append(details.get("exception", {}).get("description") or details["text"])
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                page.console_errors.append(f"{p['entry']['text']} {url}".strip())


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve the folder ``root`` on 127.0.0.1 (a free port) in a thread; yield its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a tab closed mid-download is no error
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> int:
    """``python -m dlfund.course.browser ROOT PAGE...``: report each page; screenshots in runs/screenshots."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) < 2:
        print(main.__doc__)
        return 2
    root, pages = Path(args[0]), args[1:]
    bad = 0
    with serve(root) as base, Browser() as browser:
        for rel in pages:
            shot = Path("runs/screenshots") / (rel.replace("/", "__").removesuffix(".html") + ".png")
            page = browser.open(base + rel, screenshot=shot, scroll_to="article .MathJax, article .cell_output img")
            problems = page.problems()
            bad += bool(problems)
            print(f"{rel}: {page.maths} formulas, {len(page.images)} images ({page.figures} figures); {shot}")
            for line in problems:
                print(f"  {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
