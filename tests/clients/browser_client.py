"""The conformance conversation from a web page in headless Chromium (Debian's package).

    python browser_client.py BASE_URL AUDIO_DIR RUNS       (tests/clients/clientrun.py)

A loopback HTTP server serves browser/page.html and the utterances, and takes the page's
results: one POST to /result per run, then ``{"done": true}``. Chromium runs with a fresh
profile and the flags that keep it off the network (chromium.py, shared with the tests of
`rtrec report`), and is ended once the page is done. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from chromium import CHROMIUM, HEADLESS

PAGE = Path(__file__).parent / "browser" / "page.html"
#: All runs of one page; each run's own steps time out after 20 s (page.html).
PAGE_TIMEOUT = 240.0


def chromium() -> str:
    if CHROMIUM is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install chromium)")
    return CHROMIUM


def serve(audio: Path, results: queue.Queue[dict[str, object]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/page.html":
                self._reply(PAGE.read_bytes(), "text/html; charset=utf-8")
            elif path.startswith("/audio/") and path.endswith(".pcm"):
                name = Path(path).name
                self._reply((audio / name).read_bytes(), "application/octet-stream")
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            results.put(json.loads(body))
            self._reply(b"", "text/plain")

        def _reply(self, body: bytes, kind: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # the page's requests are not news
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main() -> None:
    url, audio, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    results: queue.Queue[dict[str, object]] = queue.Queue()
    server = serve(audio, results)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    query = urllib.parse.urlencode({"ws": url, "runs": runs})
    page = f"http://127.0.0.1:{server.server_address[1]}/page.html?{query}"
    with tempfile.TemporaryDirectory(prefix="rtrec-chromium-") as profile:
        browser = subprocess.Popen(
            [chromium(), *HEADLESS, f"--user-data-dir={profile}", page],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes end with it
        )
        deadline = time.monotonic() + PAGE_TIMEOUT
        try:
            while True:
                try:
                    line = results.get(timeout=1.0)
                except queue.Empty:
                    if browser.poll() is not None:
                        raise SystemExit(f"chromium exited ({browser.returncode})") from None
                    if time.monotonic() > deadline:
                        raise SystemExit("the page reported nothing in time") from None
                    continue
                if line.get("done"):
                    break
                print(json.dumps(line), flush=True)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(browser.pid, signal.SIGTERM)
            browser.wait()
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
