"""Check a built static site the way a reader sees it: headless Chromium, offline, page by page.

The site is served from a local folder over HTTP on 127.0.0.1. Every request to another host
(web fonts, CDNs, analytics) is aborted by route interception, so the check never touches the
network and gives the same answer every time; such requests are listed as information, not as
problems. Problems are: the page itself not loading, console errors, uncaught page errors,
images that did not load, same-site resources that failed, and internal links that do not
answer HTTP 200.

The browser is the system's Chromium (Debian's ``/usr/bin/chromium``), never a browser build
downloaded by Playwright.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

#: Flags for a quiet, sandbox-free, offline headless Chromium (it runs as root in CI).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: Executable names tried, in order, when no path is given.
CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "chrome")

#: Environment variable that names the Chromium executable explicitly.
CHROMIUM_ENV_VAR = "DPMIA_CHROMIUM"

#: URL schemes the page may use without any request reaching a server.
_LOCAL_SCHEMES = frozenset({"data", "blob", "about"})

#: Chromium's console text for a failed network request; those are reported as resources.
_FAILED_RESOURCE_PREFIX = "Failed to load resource"

#: Tallest screenshot taken, in CSS pixels (below Chromium's 16,384 px texture limit).
MAX_SCREENSHOT_HEIGHT = 16_000

_PAGE_TIMEOUT_MS = 30_000
_MAX_CLIENT_REDIRECTS = 3
_SETTLE_TIMEOUT_MS = 5_000

_IMAGES_JS = """
() => Array.from(document.images).map(img => ({
  src: img.currentSrc || img.src || img.getAttribute('src') || '',
  complete: img.complete,
  naturalWidth: img.naturalWidth,
}))
"""
_LINKS_JS = "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
_EAGER_IMAGES_JS = (
    "() => document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')"
)
_IMAGES_SETTLED_JS = "() => Array.from(document.images).every(img => img.complete)"


@dataclass
class PageReport:
    """What the browser saw on one page: problems found, and information that is not a problem."""

    page: str
    url: str
    status: int | None = None
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    failed_resources: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    blocked_external: list[str] = field(default_factory=list)
    internal_links: list[str] = field(default_factory=list)
    redirected_to: str | None = None
    screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        """Every problem on this page as one readable line each."""
        lines = []
        if self.status != 200:
            lines.append(f"page did not load (HTTP {self.status})")
        lines += [f"console error: {text}" for text in self.console_errors]
        lines += [f"page error: {text}" for text in self.page_errors]
        lines += [f"broken image: {src}" for src in self.broken_images]
        lines += [f"failed resource: {item}" for item in self.failed_resources]
        lines += [f"broken link: {item}" for item in self.broken_links]
        return lines

    @property
    def ok(self) -> bool:
        """True when the page has no problems."""
        return not self.problems


@dataclass
class BrowserReport:
    """The outcome of checking a site: one PageReport per page, in the order asked."""

    site_dir: Path
    pages: list[PageReport]
    link_status: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no page has a problem."""
        return all(page.ok for page in self.pages)

    def problems(self) -> dict[str, list[str]]:
        """Problems keyed by page, only for pages that have some."""
        return {page.page: page.problems for page in self.pages if page.problems}

    def page(self, name: str) -> PageReport:
        """The report of the page with this site-relative name."""
        for page in self.pages:
            if page.page == name:
                return page
        raise KeyError(name)

    def summary(self) -> str:
        """A plain-text account: problems per page, then blocked external requests as info."""
        lines = [f"browser check of {self.site_dir}: {len(self.pages)} page(s)"]
        for page in self.pages:
            mark = "ok  " if page.ok else "FAIL"
            lines.append(f"{mark} {page.page}")
            lines += [f"       {problem}" for problem in page.problems]
            if page.redirected_to is not None:
                lines.append(f"       info: redirected to {page.redirected_to}")
            if page.blocked_external:
                lines.append(
                    f"       info: {len(page.blocked_external)} external request(s) blocked"
                )
                lines += [f"         {url}" for url in page.blocked_external]
        lines.append(f"internal links checked: {len(self.link_status)}")
        lines.append("OK" if self.ok else f"{len(self.problems())} page(s) with problems")
        return "\n".join(lines)


def find_chromium() -> str | None:
    """The path of a Chromium executable on this machine ($DPMIA_CHROMIUM first), or None."""
    explicit = os.environ.get(CHROMIUM_ENV_VAR)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # The browser closes connections it no longer needs (a page navigated away while an
        # image streamed): a broken pipe here is not a site problem, so no traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve a folder over HTTP on 127.0.0.1 at a free port; yields the base URL ending in '/'."""
    handler = partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _site_path(url: str, base_url: str) -> str:
    """A same-origin URL as a path relative to the site root, for readable reports."""
    url = urldefrag(url).url
    return url[len(base_url) :] if url.startswith(base_url) else url


def _http_status(url: str) -> int:
    """The HTTP status of a GET to the local server (0 when the server did not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def _screenshot_name(page: str) -> str:
    stem = page.strip("/").removesuffix(".html") or "index"
    return stem.replace("/", "__") + ".png"


def _inspect_loaded_page(tab) -> tuple[list[dict], list[str]]:
    """Let images settle, then read every image's load state and every link's absolute URL."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    tab.evaluate(_EAGER_IMAGES_JS)
    try:
        tab.wait_for_function(_IMAGES_SETTLED_JS, timeout=_SETTLE_TIMEOUT_MS)
        tab.wait_for_load_state("networkidle", timeout=_SETTLE_TIMEOUT_MS)
    except PlaywrightTimeout:
        pass  # an image that never completes is reported as broken by the caller
    return tab.evaluate(_IMAGES_JS), tab.evaluate(_LINKS_JS)


def _check_one_page(
    context, base_url: str, page_name: str, shot_dir: Path, link_status: dict
) -> PageReport:
    """Load one page in a new tab and fill its PageReport."""
    from playwright.sync_api import Error as PlaywrightError

    url = base_url + page_name.lstrip("/")
    report = PageReport(page=page_name, url=url)
    failed: dict[str, str] = {}  # site path -> why it failed, first reason only
    tab = context.new_page()

    def on_console(message) -> None:
        if message.type != "error":
            return
        # A failed load shows up here too; it is reported once, as an image or a resource.
        if message.text.startswith(_FAILED_RESOURCE_PREFIX):
            return
        report.console_errors.append(message.text)

    def on_response(response) -> None:
        if response.status >= 400 and _origin(response.url) == _origin(base_url):
            failed.setdefault(_site_path(response.url, base_url), f"HTTP {response.status}")

    def on_request_failed(request) -> None:
        if _origin(request.url) == _origin(base_url):
            failed.setdefault(_site_path(request.url, base_url), str(request.failure))

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: report.page_errors.append(str(error)))
    tab.on("response", on_response)
    tab.on("requestfailed", on_request_failed)
    hrefs: list[str] = []
    try:
        response = tab.goto(url, wait_until="load", timeout=_PAGE_TIMEOUT_MS)
        report.status = response.status if response is not None else None
        for attempt in range(_MAX_CLIENT_REDIRECTS + 1):
            try:
                images, hrefs = _inspect_loaded_page(tab)
                break
            except PlaywrightError as error:
                # A client-side redirect (meta refresh, location.href) replaced the document
                # while we read it: wait for the new one and read that instead.
                if "context was destroyed" not in error.message or attempt == _MAX_CLIENT_REDIRECTS:
                    raise
                tab.wait_for_load_state("load", timeout=_PAGE_TIMEOUT_MS)
        if urldefrag(tab.url).url != url:
            report.redirected_to = _site_path(tab.url, base_url)
        report.broken_images = [
            _site_path(img["src"], base_url)
            for img in images
            if not (img["complete"] and img["naturalWidth"] > 0)
        ]
        shot_path = shot_dir / _screenshot_name(page_name)
        # Chromium renders a full-page capture taller than its texture limit (16,384 px)
        # garbled, shifted sideways; long result pages are captured down to that height.
        height = int(tab.evaluate("document.documentElement.scrollHeight"))
        if height <= MAX_SCREENSHOT_HEIGHT:
            tab.screenshot(path=str(shot_path), full_page=True)
        else:
            width = int(tab.evaluate("document.documentElement.clientWidth"))
            clip = {"x": 0, "y": 0, "width": width, "height": MAX_SCREENSHOT_HEIGHT}
            tab.screenshot(path=str(shot_path), full_page=True, clip=clip)
        report.screenshot = shot_path
    except PlaywrightError as error:
        report.page_errors.append(f"browser could not check the page: {error.message}")
    finally:
        tab.close()

    # The page itself and its broken images are already reported; list only the other failures.
    already_reported = {*report.broken_images, _site_path(url, base_url)}
    report.failed_resources = [
        f"{path} ({reason})" for path, reason in failed.items() if path not in already_reported
    ]

    internal = [
        urldefrag(href).url
        for href in hrefs
        if urlsplit(href).scheme in ("http", "https") and _origin(href) == _origin(base_url)
    ]
    for link in dict.fromkeys(internal):
        if link not in link_status:
            link_status[link] = _http_status(link)
        report.internal_links.append(_site_path(link, base_url))
        if link_status[link] != 200:
            report.broken_links.append(f"{_site_path(link, base_url)} (HTTP {link_status[link]})")
    return report


def check_site(
    site_dir: Path, pages: list[str], screenshot_dir: Path, chromium: str | None = None
) -> BrowserReport:
    """Load each page of a static site in headless Chromium, offline, and report its problems."""
    from playwright.sync_api import sync_playwright

    site_dir = Path(site_dir).resolve()
    if not site_dir.is_dir():
        raise FileNotFoundError(f"site folder not found: {site_dir}")
    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError(
            "no Chromium found: install Debian's package (apt-get install chromium) "
            f"or set {CHROMIUM_ENV_VAR}=/path/to/chromium"
        )
    screenshot_dir = Path(screenshot_dir)
    screenshot_dir.mkdir(parents=True, exist_ok=True)

    link_status: dict[str, int] = {}
    reports: list[PageReport] = []
    with (
        serve_directory(site_dir) as base_url,
        tempfile.TemporaryDirectory(prefix="dpmia-chromium-") as user_data_dir,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            user_data_dir,
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        blocked: list[str] = []

        def route_request(route) -> None:
            request_url = route.request.url
            scheme = urlsplit(request_url).scheme
            if scheme in _LOCAL_SCHEMES or _origin(request_url) == _origin(base_url):
                route.continue_()
            else:
                blocked.append(request_url)
                route.abort("blockedbyclient")

        context.route("**/*", route_request)
        try:
            for page_name in pages:
                blocked.clear()
                report = _check_one_page(context, base_url, page_name, screenshot_dir, link_status)
                report.blocked_external = list(dict.fromkeys(blocked))
                reports.append(report)
        finally:
            context.close()
    readable_links = {_site_path(url, base_url): status for url, status in link_status.items()}
    return BrowserReport(site_dir=site_dir, pages=reports, link_status=readable_links)


def main(argv: list[str] | None = None) -> int:
    """Command line: check pages of a built site; exit 1 when any page has a problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site_dir", type=Path, help="the built HTML folder, e.g. _build/html")
    parser.add_argument("pages", nargs="*", help="site-relative pages (default: every *.html)")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"))
    parser.add_argument("--chromium", default=None, help="Chromium executable (default: found)")
    args = parser.parse_args(argv)
    pages = args.pages or sorted(
        str(path.relative_to(args.site_dir))
        for path in args.site_dir.rglob("*.html")
        if not path.relative_to(args.site_dir).parts[0].startswith("_")
    )
    report = check_site(args.site_dir, pages, args.screenshots, chromium=args.chromium)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
