"""The browser checker finds exactly the defects planted in a tiny static site, offline."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from dpmia_utils.publish.browser_check import BrowserReport, check_site, find_chromium

pytestmark = pytest.mark.browser

PAGES = [
    "index.html",
    "broken_image.html",
    "broken_link.html",
    "console_error.html",
    "page_error.html",
    "clean.html",
    "sub/nested.html",
    "redirect.html",
    "tall.html",
]
EXTERNAL_FONT = "https://fonts.example.invalid/inter.css"


def _png_bytes(width: int, height: int) -> bytes:
    """A valid RGB PNG written byte by byte (no imaging library involved)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _html(body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"
    )


def _build_site(root: Path) -> None:
    (root / "img").mkdir(parents=True)
    (root / "sub").mkdir()
    (root / "img" / "good.png").write_bytes(_png_bytes(12, 8))
    (root / "favicon.ico").write_bytes(_png_bytes(1, 1))  # so Chromium's own request finds one
    links = "".join(f"<a href='{page}'>{page}</a> " for page in PAGES[1:])
    pages = {
        "index.html": _html(
            "<h1>Index</h1><img src='img/good.png' alt='good'>"
            + links
            + "<a href='clean.html#section'>same page, fragment</a>"
            + "<a href='https://example.invalid/paper'>an external link is not fetched</a>"
        ),
        "broken_image.html": _html(
            "<img src='img/missing.png' alt='gone'><a href='index.html'>up</a>"
        ),
        "broken_link.html": _html("<a href='does_not_exist.html#top'>dead</a>"),
        "console_error.html": _html(
            "<p>text</p><script>console.error('planted console error')</script>"
        ),
        "page_error.html": _html("<script>throw new Error('planted uncaught error')</script>"),
        "clean.html": _html(
            "<h2 id='section'>Clean</h2><img src='img/good.png' alt='good'>",
            head=f"<link rel='stylesheet' href='{EXTERNAL_FONT}'>",
        ),
        "sub/nested.html": _html("<a href='../clean.html'>relative link up</a>"),
        # Jupyter Book's index.html is exactly this: a meta refresh to the root page.
        "redirect.html": _html("", head="<meta http-equiv='refresh' content='0; url=clean.html'>"),
        # Taller than Chromium's texture limit, like the results page: a red left margin
        # shows whether the capture is shifted sideways.
        "tall.html": _html(
            "<div style='height:40000px; border-left:40px solid #ff0000'>tall</div>",
            head="<style>body{margin:0}</style>",
        ),
    }
    for name, text in pages.items():
        (root / name).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> tuple[BrowserReport, Path]:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "no Chromium executable found: install Debian's package with "
            "`apt-get install chromium` (or `make browser-deps` as root), "
            "or point DPMIA_CHROMIUM at a Chromium binary"
        )
    pytest.importorskip(
        "playwright.sync_api",
        reason="playwright is missing: install the test extras with `pip install -e '.[test]'`",
    )
    root = tmp_path_factory.mktemp("site")
    _build_site(root)
    shots = tmp_path_factory.mktemp("screenshots")
    return check_site(root, PAGES, shots, chromium=chromium), shots


def test_reports_exactly_the_planted_problems(checked):
    report, _ = checked
    assert report.problems() == {
        "broken_image.html": ["broken image: img/missing.png"],
        "broken_link.html": ["broken link: does_not_exist.html (HTTP 404)"],
        "console_error.html": ["console error: planted console error"],
        "page_error.html": ["page error: planted uncaught error"],
    }
    assert not report.ok


def test_clean_pages_are_ok(checked):
    report, _ = checked
    for name in ("index.html", "clean.html", "sub/nested.html", "redirect.html"):
        assert report.page(name).ok, report.page(name).problems
        assert report.page(name).status == 200


def test_external_requests_are_blocked_and_reported_as_info_only(checked):
    report, _ = checked
    clean = report.page("clean.html")
    assert clean.blocked_external == [EXTERNAL_FONT]
    assert clean.ok
    # redirect.html lands on clean.html, so it sees the same blocked stylesheet
    assert report.page("redirect.html").blocked_external == [EXTERNAL_FONT]
    others = [p for p in report.pages if p.page not in ("clean.html", "redirect.html")]
    assert all(not page.blocked_external for page in others)


def test_a_client_side_redirect_is_followed_and_the_target_checked(checked):
    report, _ = checked
    page = report.page("redirect.html")
    assert page.redirected_to == "clean.html"
    assert page.ok
    assert report.page("clean.html").redirected_to is None


def test_internal_links_are_fetched_once_each_without_fragments(checked):
    report, _ = checked
    # clean.html is linked from three pages, once with a fragment: one entry, one fetch.
    assert report.link_status == {
        **{page: 200 for page in PAGES[1:]},
        "index.html": 200,
        "clean.html": 200,
        "does_not_exist.html": 404,
    }
    assert report.page("index.html").internal_links.count("clean.html") == 1
    assert "https://example.invalid/paper" not in report.link_status


def test_every_page_gets_a_full_page_screenshot(checked):
    report, shots = checked
    expected = {"index.png", "broken_image.png", "broken_link.png", "console_error.png"}
    expected |= {"page_error.png", "clean.png", "sub__nested.png", "redirect.png", "tall.png"}
    assert {path.name for path in shots.iterdir()} == expected
    for page in report.pages:
        data = page.screenshot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", data[16:24])
        assert width == 1280 and height >= 900  # full page at least the viewport


def test_a_missing_page_is_a_problem(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "no Chromium executable found: `apt-get install chromium` (Debian) or set DPMIA_CHROMIUM"
        )
    (tmp_path / "site").mkdir()
    report = check_site(tmp_path / "site", ["absent.html"], tmp_path / "shots", chromium=chromium)
    assert report.problems() == {"absent.html": ["page did not load (HTTP 404)"]}


def test_a_page_taller_than_chromiums_limit_is_captured_down_to_it_unshifted(checked):
    from PIL import Image

    from dpmia_utils.publish.browser_check import MAX_SCREENSHOT_HEIGHT

    report, _ = checked
    with Image.open(report.page("tall.html").screenshot) as image:
        assert image.size == (1280, MAX_SCREENSHOT_HEIGHT)
        rgb = image.convert("RGB")
        for y in (100, MAX_SCREENSHOT_HEIGHT // 2, MAX_SCREENSHOT_HEIGHT - 100):
            assert rgb.getpixel((20, y)) == (255, 0, 0)  # the red margin, where it belongs
            assert rgb.getpixel((200, y)) == (255, 255, 255)
