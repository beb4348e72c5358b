"""Headless Chromium for the dashboard tests, through tests/browser/driver.mjs (npm playwright-core).

Sets itself up on a fresh machine: Debian's chromium with apt-get when /usr/bin/chromium is missing
(CI runs as root), and `npm ci` in tests/browser when its node_modules is missing. Playwright's own
browser download is never used: the machine may have no internet beyond its package mirrors.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import apt, proc

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("JOBWARDEN_TEST_ARTIFACTS", ROOT / "test-artifacts"))
"""Screenshots of every run land here (CI uploads the directory)."""
DOCS = ROOT / "docs" / "dashboard"
UPDATE_DOCS = os.environ.get("JOBWARDEN_UPDATE_SCREENSHOTS") == "1"
"""With JOBWARDEN_UPDATE_SCREENSHOTS=1 the README's screenshots in docs/dashboard are rewritten too."""


def install() -> None:
    """Chromium and the driver's npm packages, installed once if missing."""
    apt.ensure("chromium", CHROMIUM)
    if not (HERE / "node_modules" / "playwright-core").exists():
        npm = shutil.which("npm")
        assert npm is not None, "the dashboard tests need Node.js and npm"
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, capture_output=True, timeout=300
        )


class Browser:
    """One Chromium; commands go to named sessions (separate cookie jars)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    def _call(self, cmd: str, session: str = "main", **args: Any) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"cmd": cmd, "session": session, **args}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise AssertionError(f"the browser driver exited: {self._stderr()}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"{cmd} {args}: {answer['error']}")
        return answer["value"]

    def _stderr(self) -> str:
        self._process.kill()
        _, err = self._process.communicate(timeout=10)
        return err[-3000:]

    def goto(self, url: str, session: str = "main", viewport: dict[str, int] | None = None) -> str:
        """Open `url`; returns the address the page ended on."""
        result: str = self._call("goto", session, url=url, viewport=viewport)
        return result

    def wait_for(self, selector: str, text: str | None = None, session: str = "main") -> None:
        """Until an element matching `selector` (containing `text`) is visible (10 s at most)."""
        self._call("waitFor", session, selector=selector, text=text)

    def wait_gone(self, selector: str, session: str = "main") -> None:
        """Until no element matches `selector`."""
        self._call("waitFor", session, selector=selector, state="detached")

    def wait_attr(self, selector: str, name: str, value: str, session: str = "main") -> None:
        """Until the first element matching `selector` has attribute `name` = `value`."""
        self._call("waitAttr", session, selector=selector, name=name, value=value)

    def click(self, selector: str, session: str = "main") -> None:
        """Click the first match."""
        self._call("click", session, selector=selector)

    def fill(self, selector: str, value: str, session: str = "main") -> None:
        """Type into the first match."""
        self._call("fill", session, selector=selector, value=value)

    def check(self, selector: str, session: str = "main") -> None:
        """Tick the first matching checkbox."""
        self._call("check", session, selector=selector)

    def count(self, selector: str, session: str = "main") -> int:
        """How many elements match."""
        found: int = self._call("count", session, selector=selector)
        return found

    def text(self, selector: str, session: str = "main") -> str:
        """The first match's text."""
        found: str = self._call("text", session, selector=selector)
        return found

    def screenshot(self, name: str, session: str = "main", full_page: bool = False) -> Path:
        """A PNG in the artifacts directory (and in docs/dashboard when updating the README's)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self._call("screenshot", session, path=str(path), fullPage=full_page)
        if UPDATE_DOCS:
            DOCS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS / name)
        return path

    def page_errors(self, session: str = "main") -> list[str]:
        """Uncaught script errors the session's page reported."""
        found: list[str] = self._call("errors", session)
        return found


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """A started driver with headless Chromium, closed at the end."""
    install()
    node = shutil.which("node")
    assert node is not None, "the dashboard tests need Node.js"
    process = proc.spawn(
        [node, str(HERE / "driver.mjs")], cwd=HERE, env={"CHROMIUM": str(CHROMIUM)}, stdin=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        if '"ready"' not in ready:
            process.kill()
            _, err = process.communicate(timeout=10)
            raise AssertionError(f"Chromium did not start: {ready!r} {err[-3000:]}")
        yield Browser(process)
    finally:
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.close()
        proc.stop(process)
