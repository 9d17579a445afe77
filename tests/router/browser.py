"""A real browser for the page tests: Debian's Chromium driven by Playwright.

``CHROMIUM`` names the binary (``make test`` sets it and installs the package);
a missing browser fails the tests, it never skips them. Screenshots go to
``tests/artifacts/`` (ignored by git).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

__all__ = ["ARTIFACTS", "browser", "shot"]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no browser at {path}: `make test` installs Debian's chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path)
        yield launched
        await launched.close()


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
