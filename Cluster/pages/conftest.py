"""Fixtures of the staff-page browser tests: the three nodes' base URLs, Debian's chromium driven by
Playwright, fresh browser contexts per test, and a screenshot (plus the page's URL and HTML) of every
open page when a test fails, kept under .build/pages-artifacts/.

Cluster/pages/run starts the cluster and sets the CLINICMESH_PAGES_* variables read here; see README.md.
"""

from __future__ import annotations

import os
import pathlib
import re
import urllib.parse

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
NODES = ("neike", "waike", "erke")
DEFAULT_URLS = {
    "neike": "https://127.0.0.1:7601",
    "waike": "https://127.0.0.1:7602",
    "erke": "https://127.0.0.1:7603",
}
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
REPO = pathlib.Path(__file__).resolve().parents[2]

# Generous deadlines: the tests wait for conditions, never for a fixed time, and never assert how long
# anything took. Two shared cores running three nodes and a browser can be slow.
ACTION_TIMEOUT_MS = 30_000
NAVIGATION_TIMEOUT_MS = 45_000


def _base_urls() -> dict[str, str]:
    urls = {}
    for node in NODES:
        url = os.environ.get(f"CLINICMESH_PAGES_{node.upper()}", DEFAULT_URLS[node]).rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or parts.hostname not in LOOPBACK:
            raise pytest.UsageError(
                f"CLINICMESH_PAGES_{node.upper()}={url!r}: expected an https URL on a loopback address "
                f"(one of {sorted(LOOPBACK)}); these tests never reach beyond this machine"
            )
        urls[node] = url
    return urls


def artifacts_dir() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("CLINICMESH_PAGES_ARTIFACTS", REPO / ".build" / "pages-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def urls() -> dict[str, str]:
    """Base URL of each node's HTTPS port, by node id (neike, waike, erke)."""
    return _base_urls()


@pytest.fixture(scope="session")
def tls() -> dict:
    """How the tests trust the nodes' HTTPS certificates.

    With CLINICMESH_PAGES_SPKI (the nodes' public-key hashes, set by Cluster/pages/run after checking each
    node certificate against the cluster CA) chromium accepts exactly those keys, and with
    CLINICMESH_PAGES_CA Playwright's request API (Node.js) trusts the cluster CA. Without both, the
    contexts fall back to ignore_https_errors=True.
    """
    spki = os.environ.get("CLINICMESH_PAGES_SPKI", "").strip()
    ca = os.environ.get("CLINICMESH_PAGES_CA", "").strip()
    if ca and not pathlib.Path(ca).is_file():
        raise pytest.UsageError(f"CLINICMESH_PAGES_CA={ca!r}: expected the cluster CA certificate file")
    return {"spki": spki, "ca": ca, "ignore_https_errors": not (spki and ca)}


@pytest.fixture(scope="session")
def playwright_instance(tls) -> Playwright:
    if tls["ca"]:
        # Read by the Playwright driver (Node.js) when it starts: its request API then trusts the cluster CA.
        os.environ["NODE_EXTRA_CA_CERTS"] = tls["ca"]
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance, tls) -> Browser:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"expected Debian's chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)")
    args = [f"--ignore-certificate-errors-spki-list={tls['spki']}"] if tls["spki"] else []
    b = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=args)
    yield b
    b.close()


class Browsing:
    """Makes browser contexts (each its own cookie jar: one per person or session) and keeps every page
    they open, so that a failing test leaves a screenshot of each."""

    active: list["Browsing"] = []

    def __init__(self, browser: Browser, tls: dict, label: str):
        self.browser = browser
        self.tls = tls
        self.label = label
        self.contexts: list[BrowserContext] = []
        self.pages: list[Page] = []

    def context(self) -> BrowserContext:
        ctx = self.browser.new_context(
            ignore_https_errors=self.tls["ignore_https_errors"],
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            viewport={"width": 1280, "height": 900},
        )
        ctx.set_default_timeout(ACTION_TIMEOUT_MS)
        ctx.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        ctx.on("page", self._keep)  # popups too
        self.contexts.append(ctx)
        return ctx

    def _keep(self, page: Page) -> None:
        if page not in self.pages:
            self.pages.append(page)

    def page(self, ctx: BrowserContext | None = None) -> Page:
        """A new page, in a new context unless one is given."""
        page = (ctx or self.context()).new_page()
        self._keep(page)
        return page

    def snapshot(self, label: str) -> list[pathlib.Path]:
        """Screenshot (full page) and URL + HTML of every open page; returns the screenshot paths."""
        out = artifacts_dir()
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")[:150]
        kept = []
        for i, page in enumerate(self.pages):
            if page.is_closed():
                continue
            shot = out / f"{stem}-{i}.png"
            try:
                page.screenshot(path=str(shot), full_page=True, timeout=15_000)
                kept.append(shot)
            except Exception as error:  # a crashed page must not hide the test's own failure
                (out / f"{stem}-{i}.screenshot-error.txt").write_text(f"{error}\n", encoding="utf-8")
            try:
                (out / f"{stem}-{i}.html").write_text(f"<!-- {page.url} -->\n{page.content()}", encoding="utf-8")
            except Exception:
                pass
        return kept

    def close(self) -> None:
        for ctx in self.contexts:
            try:
                ctx.close()
            except Exception:
                pass
        self.contexts.clear()
        self.pages.clear()

    def __enter__(self) -> "Browsing":
        Browsing.active.append(self)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is not None:
                self.snapshot(self.label)
        finally:
            self.close()
            if self in Browsing.active:
                Browsing.active.remove(self)


@pytest.fixture
def browsing(browser, tls, request) -> Browsing:
    """Fresh contexts for one test; screenshots on failure come from pytest_runtest_makereport below."""
    b = Browsing(browser, tls, request.node.nodeid)
    Browsing.active.append(b)
    yield b
    b.close()
    if b in Browsing.active:
        Browsing.active.remove(b)


@pytest.fixture(scope="session")
def session_browsing(browser, tls):
    """For session-scoped fixtures: `with session_browsing("label") as b:` screenshots if the block fails."""
    return lambda label: Browsing(browser, tls, label)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and report.when in ("setup", "call"):
        shots = []
        for b in list(Browsing.active):
            shots += b.snapshot(f"{item.nodeid}-{report.when}")
        if shots:
            report.sections.append(
                ("screenshots of the failing pages", "\n".join(str(s) for s in shots))
            )
    return report
