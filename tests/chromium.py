"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by
the ``playwright`` package (``playwright install`` downloads nothing here).  The
``browser`` fixture in tests/conftest.py launches it once per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def launched() -> Iterator[Any]:
    """One headless Chromium, closed after use; the test is skipped without it."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium (make system-packages installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
