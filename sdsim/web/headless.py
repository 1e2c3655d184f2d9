"""Drive the page in Debian's headless Chromium (Selenium): shared by the browser test and the screenshot script.

Nothing is downloaded: the browser is ``/usr/bin/chromium`` and the driver ``/usr/bin/chromedriver``
(Debian packages ``chromium`` and ``chromium-driver``); Selenium is pointed at both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")
REPO = Path(__file__).resolve().parents[2]


def _which(names: tuple[str, ...]) -> str | None:
    for n in names:
        p = n if os.path.isabs(n) and os.access(n, os.X_OK) else shutil.which(n)
        if p:
            return p
    return None


def browser_missing() -> str | None:
    """Why the headless browser cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install \".[test]\")"
    if _which(CHROMIUM) is None:
        return "Chromium is not installed (Debian: apt-get install -y chromium chromium-driver)"
    if _which(CHROMEDRIVER) is None:
        return "chromedriver is not installed (Debian: apt-get install -y chromium-driver)"
    return None


def make_driver(download_dir: Path | None = None, width: int = 1500, height: int = 1100) -> Any:
    """A headless Chromium driven by Selenium, downloads going to ``download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    opts = webdriver.ChromeOptions()
    opts.binary_location = _which(CHROMIUM) or CHROMIUM[0]
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--force-device-scale-factor=1", "--lang=en-US",
              "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(a)
    if download_dir is not None:
        opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                               "download.prompt_for_download": False,
                                               "safebrowsing.enabled": False})
    driver = webdriver.Chrome(options=opts, service=DriverService(executable_path=_which(CHROMEDRIVER)))
    if download_dir is not None:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


class Server:
    """``simulate.py serve --port 0`` in a subprocess; ``url`` is read from its first line."""

    def __init__(self, *args: str, cwd: Path = REPO, timeout: float = 60) -> None:
        cmd = [sys.executable, str(REPO / "simulate.py"), "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        lines = []
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            lines.append(line)
            m = re.search(r"(http://\S+?/)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(lines))
        self.log = lines
        # keep reading the server's output, so that a full pipe never blocks it
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            for line in self.proc.stdout or ():
                self.log.append(line)
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            try:
                self.proc.stdout.close()
            except (OSError, ValueError):
                pass

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_settled(driver: Any, timeout: float = 30) -> None:
    """Wait until the page has answered its latest change with the central run and the ensemble."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(
        "const b = document.body.dataset; return b.seq !== '0' && b.ensembleSeq === b.seq && b.centralSeq === b.seq;"))
