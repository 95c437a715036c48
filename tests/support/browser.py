"""A real headless browser for UI tests: Debian's `chromium`, driven over the Chrome DevTools Protocol.

No browser driver package: chromium is started with `--remote-debugging-port`, and the test talks to
its page over one websocket (the `websockets` package Prefect already depends on). Enough for what
the UI tests need: open a URL, wait until the page's text says something, read links and images,
take a full-page screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import stop

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
"""Debian's chromium first; GitHub's Ubuntu runners ship Google Chrome (the same DevTools protocol)."""


def chromium_path() -> str | None:
    """Non-blocking; the chromium binary on PATH (or $SLIPWAY_CHROMIUM), None when there is none."""
    explicit = os.environ.get("SLIPWAY_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class Page:
    """One browser tab: navigate, evaluate JavaScript, wait for text, screenshot."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        """Blocking; one DevTools command and its result (events in between are dropped)."""
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            raw = self._ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            msg = json.loads(raw)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    def js(self, expression: str) -> Any:
        """Blocking; the value of a JavaScript expression in the page (awaited when it is a promise)."""
        out = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression[:80]}: {out['exceptionDetails']}")
        return out.get("result", {}).get("value")

    def open(self, url: str) -> None:
        """Blocking; navigates (the SPA then renders on its own: use `wait_for_text`)."""
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        """The page's visible text."""
        return str(self.js("document.body ? document.body.innerText : ''") or "")

    def wait_for_text(self, *patterns: str, timeout_s: float = 60.0) -> str:
        """Blocking; the page text once every regex matches it; AssertionError with the text otherwise."""
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(re.search(p, text) for p in patterns):
                return text
            time.sleep(0.5)
        missing = [p for p in patterns if not re.search(p, text)]
        raise AssertionError(f"page never showed {missing}; its text:\n{text[:4000]}")

    def _on_text(self, text: str, action: str) -> None:
        """Runs `action` (JavaScript over `el`) on the innermost visible element whose text is exactly `text`."""
        found = self.js(
            "(() => { const want = " + json.dumps(text) + ";"
            " const all = [...document.querySelectorAll('body *')].filter(e => e.offsetParent !== null"
            " && e.innerText && e.innerText.trim() === want);"
            " const el = all.find(e => ![...e.children].some(c => all.includes(c)));"
            " if (!el) return false; " + action + "; return true; })()"
        )
        if not found:
            raise AssertionError(f"no element with the text {text!r}; page text:\n{self.text()[:3000]}")

    def click_text(self, text: str) -> None:
        """Clicks the innermost visible element whose text is exactly `text` (a tab, a button)."""
        self._on_text(text, "el.click()")

    def scroll_to_text(self, text: str) -> None:
        """Scrolls the innermost visible element whose text is exactly `text` to the middle of the window."""
        self._on_text(text, "el.scrollIntoView({block: 'center'})")
        time.sleep(0.3)

    def links(self) -> list[tuple[str, str]]:
        """(text, href) of every link on the page."""
        found = self.js("[...document.querySelectorAll('a[href]')].map(a => [a.innerText, a.href])")
        return [(str(t), str(h)) for t, h in found or []]

    def images(self) -> list[tuple[str, int]]:
        """(src, natural width) of every image: a width of 0 is an image that did not load."""
        found = self.js("[...document.images].map(i => [i.currentSrc || i.src, i.naturalWidth])")
        return [(str(s), int(w)) for s, w in found or []]

    def screenshot(self, path: Path) -> Path:
        """Blocking; a PNG of the window (1440 x 1800): what a person sees without scrolling. (Capturing
        beyond the viewport resizes it, and single-page apps re-render half-loaded while it does.)"""
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextmanager
def headless_chromium(binary: str, *, log: Path) -> Iterator[Page]:
    """Blocking start (~1-3 s); one headless chromium with a fresh profile and one page; stopped on exit."""
    from websockets.sync.client import connect

    profile = Path(tempfile.mkdtemp(prefix="slipway-chromium-"))
    proc = subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1440,1800",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    try:
        port = _devtools_port(profile, proc, log)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t.get("type") == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=20) as ws:
            tab = Page(ws)
            tab.call("Page.enable")
            tab.call("Runtime.enable")
            yield tab
    finally:
        stop(proc, grace_s=10)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], log: Path) -> int:
    """Chromium writes the port it chose to <profile>/DevToolsActivePort."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited {proc.returncode}: {log.read_text()[-2000:]}")
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        time.sleep(0.2)
    raise RuntimeError(f"chromium did not open its DevTools port: {log.read_text()[-2000:]}")
