"""The report of a real (tiny) study, opened in headless Chromium as a reader would open it.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: messages are JSON ended by
a NUL byte, commands on fd 3, answers and events on fd 4), so the test needs no driver binary and no port.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lineup import Store, load_study, run_study
from lineup.report import build_report

XSS = "<script>alert(1)</script>"

STUDY = """
[study]
name = "browser"
title = "Browser <b>check</b>"
seeds = [0, 1]

[data]
dataset = "mnist-5k"
classes = [0, 1]
train_size = 200
test_size = 100

[train]
epochs = 2
batch_size = 50

[protocol]
failure_cases = 3

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "<script>alert(1)</script>"
model = "mlp"
options = { hidden = [8] }
"""

# No network here: without these, Chromium keeps trying to reach update, sync and safe-browsing servers.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


class Browser:
    """A headless Chromium and one page of it, driven over the DevTools protocol."""

    def __init__(self, exe: str, profile: Path, log: Path) -> None:
        import fcntl

        to_chrome, from_chrome = os.pipe(), os.pipe()
        # The child's ends are moved above fd 9 so that mapping them onto fds 3 and 4 cannot clobber either.
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome[0], from_chrome[1]))
        for fd in (to_chrome[0], from_chrome[1]):
            os.close(fd)
        args = [exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        remap = f'exec "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        with log.open("wb") as err:
            self.proc = subprocess.Popen(["bash", "-c", remap, "bash", *args], pass_fds=(child_in, child_out),
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        os.close(child_in)
        os.close(child_out)
        self._w, self._r = to_chrome[1], from_chrome[0]
        self._buf, self._id = b"", 0
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._page = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buf += chunk
        message, _, self._buf = self._buf.partition(b"\0")
        return json.loads(message)  # type: ignore[no-any-return]

    def send(self, method: str, *, page: bool = False, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if page:
            msg["sessionId"] = self._page
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]  # type: ignore[no-any-return]
            self.events.append(m)

    def wait_for(self, *events: str, timeout: float = 30.0) -> str:
        """Wait until one of ``events`` has arrived and return its name."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("method") in events:
                    return e["method"]  # type: ignore[no-any-return]
            self.events.append(self._read(deadline))

    def evaluate(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", page=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors and browser log errors (e.g. a resource that failed to load)."""
        out = []
        for e in self.events:
            p, method = e.get("params", {}), e.get("method")
            if method == "Runtime.exceptionThrown":
                out.append(json.dumps(p["exceptionDetails"])[:300])
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args"))[:300])
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    (root / "browser.toml").write_text(STUDY)
    with Store(root / "results") as store:
        outcome = run_study(load_study(root / "browser.toml"), store, progress=False)
        assert [r.status for _, r in outcome.trained] == ["complete"] * 4
        return build_report(store, "browser")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    exe = _chromium()
    if exe is None or shutil.which("bash") is None:
        pytest.skip("no Chromium found (chromium, chromium-browser or google-chrome on PATH): "
                    "`apt-get install chromium` or scripts/setup.sh installs it")
    b = Browser(exe, tmp_path / "profile", tmp_path / "chromium.log")
    for domain in ("Page", "Runtime", "Log"):
        b.send(f"{domain}.enable", page=True)
    b.send("Emulation.setDeviceMetricsOverride", page=True, width=1280, height=900, deviceScaleFactor=1,
           mobile=False)
    yield b
    b.close()


def test_report_opens_cleanly_in_chromium(report: Path, browser: Browser) -> None:
    browser.send("Page.navigate", page=True, url=report.as_uri())
    # An alert blocks the page until it is answered: stop waiting at once if one opens.
    if browser.wait_for("Page.loadEventFired", "Page.javascriptDialogOpening") != "Page.loadEventFired":
        browser.send("Page.handleJavaScriptDialog", page=True, accept=True)
        pytest.fail("the report opened a JavaScript dialog: a name was rendered as markup")
    state = browser.evaluate("""(() => {
        const visible = el => !!el && el.getBoundingClientRect().height > 0;
        const ids = ["summary", "data", "accuracy", "dynamics", "curves", "per-class", "confusion", "failures",
                     "representations", "models", "table-ranking", "table-accuracy", "table-pairwise"];
        const imgs = Array.from(document.images);
        return {
            visible: Object.fromEntries(ids.map(id => [id, visible(document.getElementById(id))])),
            images: imgs.length,
            drawn: imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length,
            scripts: document.scripts.length,
            title: document.querySelector("h1").textContent,
            text: document.body.innerText,
            firstCells: Array.from(document.querySelectorAll("#table-accuracy tbody tr td:first-child"))
                .map(td => td.textContent),
        };
    })()""")
    assert all(state["visible"].values()), state["visible"]
    # learning curves, step losses, gap, gradients/time, per class, 2 confusion, 2 galleries, CKA
    assert state["images"] >= 10 and state["drawn"] == state["images"]
    assert state["scripts"] == 1 and state["title"] == "Browser <b>check</b>"
    assert XSS in state["firstCells"] and XSS in state["text"]  # shown as text, never run
    assert not [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert browser.errors() == []

    # The sortable tables work: the model column sorts both ways.
    order = browser.evaluate("""(() => {
        const th = document.querySelector("#table-accuracy th");
        const cells = () => Array.from(document.querySelectorAll("#table-accuracy tbody tr td:first-child"))
            .map(td => td.textContent);
        th.click(); const up = cells(); th.click();
        return [up, cells(), th.getAttribute("aria-sort")];
    })()""")
    assert order[0] == sorted(order[0]) and order[1] == sorted(order[0], reverse=True)
    assert order[2] == "descending" and browser.errors() == []

    from PIL import Image

    shot = browser.send("Page.captureScreenshot", page=True, format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": 4000, "scale": 1})
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(png)).convert("L")
    assert img.size == (1280, 4000)
    pixels = np.asarray(img)
    # Not blank: text, tables and plots leave a good share of non-white pixels with many grey levels.
    assert (pixels < 200).mean() > 0.01 and len(np.unique(pixels)) > 50
