"""Real-browser tests: Debian's chromium driven by Playwright (run by `make browser`, after `make book`).

Playwright's own browser download is never used: the tests launch the system chromium
(``COURSE_CHROMIUM``, default /usr/bin/chromium), headless, with a fresh profile and without
background networking. Where chromium is not installed and cannot be (no apt, not root), every
test here is skipped with that reason; `make chromium` installs it where apt is allowed.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from browser_support import ARGS, CHROMIUM, SCREENSHOTS


@pytest.fixture(scope="session")
def browser_context():
    """One chromium with a fresh user-data dir for the session; 1280x900 like a laptop screen."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"chromium is not installed at {CHROMIUM} and could not be installed here "
                    "(`make chromium` uses apt-get as root or with password-less sudo; set "
                    "COURSE_CHROMIUM to another chromium): browser tests skipped")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make venv")
    SCREENSHOTS.mkdir(exist_ok=True)
    profile = tempfile.mkdtemp(prefix="course-chromium-")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS, timeout=60_000,
            viewport={"width": 1280, "height": 900}, service_workers="block")
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
