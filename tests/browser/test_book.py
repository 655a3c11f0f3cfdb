"""The built book (book/_build/html) as a reader sees it, offline, in a real browser.

For the landing page, the ledger and instructor pages and the chapters with math and explorers:
no failed request, no request off the site, no page error, math typeset by the book's own
MathJax (no raw TeX left), every image loaded and not shrunk out of readability, no widget repr,
explorers shown as their picture and sentence, solutions hidden behind a toggle. Every internal
link and anchor of the whole site resolves. Screenshots go to tests/browser/screenshots/.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from browser_support import ROOT, SCREENSHOTS, WIDGET_REPRS

SITE = Path(os.environ.get("COURSE_BOOK_SITE", ROOT / "book" / "_build" / "html"))  # override: a copy
PAGES = ["index.html", "ledger.html", "instructor.html", "notebooks/01_data_normalization.html",
         "notebooks/02_data_augmentation.html", "notebooks/04_optimizers.html",
         "notebooks/05_learning_rate_schedules.html"]
MIN_IMAGE_SCALE = 0.75  # a figure shown at under 75% of its pixel width has unreadable text


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site():
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built book in {SITE}: run `make book` first")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def notebooks_with_tag(tag: str) -> list[str]:
    names = []
    for path in sorted((SITE / "_sources" / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        if any(tag in c.get("metadata", {}).get("tags", []) for c in cells):
            names.append(path.stem)
    return names


class Visit:
    """A page loaded with every request, response and error recorded."""

    def __init__(self, context, base: str, path: str):
        self.failed: list[str] = []
        self.offsite: list[str] = []
        self.errors: list[str] = []
        self.page = page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} (HTTP {r.status})"))

        def route(request_route):
            url = request_route.request.url
            if url.startswith(base):
                request_route.continue_()
            else:  # nothing may leave the site; a CDN would fail offline anyway
                self.offsite.append(url)
                request_route.abort()

        page.route("**/*", route)
        page.goto(base + path, wait_until="load")
        page.wait_for_load_state("networkidle")
        # MathJax typesets after load; wait for it on pages that load it
        page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")

    def text_outside_code(self) -> str:
        return self.page.evaluate("""() => {
            const body = document.body.cloneNode(true);
            const code = 'pre, code, script, style, mjx-container, .highlight';
            body.querySelectorAll(code).forEach(e => e.remove());
            return body.innerText;
        }""")


@pytest.fixture(scope="module")
def visits(browser_context, site):
    loaded = {path: Visit(browser_context, site, path) for path in PAGES}
    yield loaded
    for visit in loaded.values():
        visit.page.close()


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_offline_without_errors(visits, path):
    visit = visits[path]
    assert not visit.offsite, f"{path} requested off-site: {visit.offsite}"
    assert not visit.failed, f"{path}: failed requests {visit.failed}"
    assert not visit.errors, f"{path}: page errors {visit.errors}"


@pytest.mark.parametrize("path", PAGES)
def test_math_is_typeset_by_the_books_mathjax(visits, path):
    page = visits[path].page
    math = page.evaluate("""() => Array.from(document.querySelectorAll('.math')).map(
        e => e.querySelector('mjx-container') !== null)""")
    if path == "notebooks/04_optimizers.html":
        assert len(math) >= 10, "notebook 04's optimizer table is written in math"
    assert all(math), f"{path}: {math.count(False)} of {len(math)} math elements not typeset"
    if math:
        assert page.locator('script[src$="_static/mathjax/tex-mml-chtml.js"]').count() == 1
    text = visits[path].text_outside_code()
    for raw in ("\\(", "\\)", "\\[", "$$", "\\frac", "\\theta"):
        assert raw not in text, f"{path} shows raw TeX {raw!r}"


@pytest.mark.parametrize("path", PAGES)
def test_images_load_and_are_readable(visits, path):
    page = visits[path].page
    images = page.evaluate("""async () => Promise.all(Array.from(document.images).map(async img => {
        img.loading = 'eager';
        try { await img.decode(); } catch (e) {}
        return {src: img.currentSrc.slice(0, 80), ok: img.complete && img.naturalWidth > 0,
                natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
                output: img.closest('.cell_output') !== null};
    }))""")
    broken = [i["src"] for i in images if not i["ok"]]
    assert not broken, f"{path}: images not loaded {broken}"
    shrunk = [f"{i['src'][:40]}: {i['natural']} px shown at {i['shown']:.0f} px" for i in images
              if i["output"] and i["shown"] and i["shown"] < MIN_IMAGE_SCALE * i["natural"]]
    assert not shrunk, f"{path}: figures too wide for the column, text unreadable: {shrunk}"


@pytest.mark.parametrize("path", PAGES)
def test_no_widget_repr(visits, path):
    text = visits[path].page.evaluate("() => document.body.innerText")
    shown = [r for r in WIDGET_REPRS if r in text]
    assert not shown, f"{path} shows widget reprs {shown}"


@pytest.mark.parametrize("notebook", ["02_data_augmentation", "04_optimizers", "05_learning_rate_schedules"])
def test_explorer_shows_its_picture_and_sentence(browser_context, site, notebook):
    assert notebook in notebooks_with_tag("explorer"), f"{notebook} has no cell tagged `explorer`"
    visit = Visit(browser_context, site, f"notebooks/{notebook}.html")
    try:
        cell = visit.page.locator(".cell.tag_explorer").first
        figure = cell.locator("figure.course-explorer")
        assert figure.count() == 1, f"{notebook}: the explorer cell has no static picture (re-execute it)"
        assert "run this cell in JupyterLab" in figure.inner_text()
        assert figure.locator("img").evaluate("img => img.complete && img.naturalWidth >= 500")
        if notebook == "04_optimizers":
            cell.scroll_into_view_if_needed()
            visit.page.screenshot(path=SCREENSHOTS / "book-04-explorer.png")
    finally:
        visit.page.close()


def test_solutions_are_hidden_behind_a_toggle(browser_context, site):
    notebooks = notebooks_with_tag("solution")
    if not notebooks:
        pytest.skip("no cell is tagged `solution` yet (tests/test_solutions.py fails until they are)")
    for notebook in notebooks:
        visit = Visit(browser_context, site, f"notebooks/{notebook}.html")
        try:
            cells = visit.page.locator(".cell.tag_solution")
            assert cells.count() >= 1, f"{notebook}: solution cells are not in the page"
            for k in range(cells.count()):
                source = cells.nth(k).locator(".cell_input")
                assert not source.is_visible(), f"{notebook}: solution {k} is shown without a click"
                cells.nth(k).locator("summary").first.click()
                assert source.is_visible(), f"{notebook}: solution {k} does not open"
                assert "PASSED" in cells.nth(k).inner_text(), f"{notebook}: solution {k} output"
        finally:
            visit.page.close()


def test_screenshots(visits):
    visits["index.html"].page.screenshot(path=SCREENSHOTS / "book-landing.png")
    visits["ledger.html"].page.screenshot(path=SCREENSHOTS / "book-ledger.png", full_page=True)
    page = visits["notebooks/04_optimizers.html"].page
    page.locator("table .math").first.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "book-04-math.png")
    assert (SCREENSHOTS / "book-04-math.png").stat().st_size > 10_000


def test_ledger_and_instructor_pages_come_from_records(visits):
    ledger = visits["ledger.html"].page.inner_text("main")
    assert ledger.count("\nC") >= 25 and "C25" in ledger and "no GPU run recorded" in ledger
    instructor = visits["instructor.html"].page.inner_text("main")
    assert "How long each notebook takes" in instructor and "check_accuracy" in instructor


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag in ("a", "link") and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.links.append(attrs["src"])
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":  # index.html
            self.links.append((attrs.get("content") or "").split("url=", 1)[-1])


def test_every_internal_link_and_anchor_resolves(site):
    pages: dict[str, Links | None] = {}
    broken: list[str] = []
    anchors: list[tuple[str, str, str]] = []
    todo = [site + "index.html"]
    while todo:
        url = todo.pop()
        if url in pages:
            continue
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read() if url.endswith((".html", "/")) else b""
        except urllib.error.URLError as err:
            pages[url] = None
            broken.append(f"{url}: {err}")
            continue
        if not body:
            pages[url] = None
            continue
        parser = Links()
        parser.feed(body.decode("utf-8"))
        pages[url] = parser
        for href in parser.links:
            if href.startswith(("mailto:", "javascript:", "data:")):
                continue
            target, fragment = urldefrag(urljoin(url, href))
            if not target.startswith(site):
                continue  # off-site links are for readers with a network; requests are checked above
            if fragment:
                anchors.append((url, target, fragment))
            if target not in pages:
                todo.append(target)
    for source, target, fragment in anchors:
        parsed = pages.get(target)
        if parsed is not None and fragment not in parsed.ids:
            broken.append(f"{urlsplit(source).path} -> {urlsplit(target).path}#{fragment}")
    html_pages = [u for u, p in pages.items() if p is not None]
    assert len(html_pages) >= 15, f"crawled only {len(html_pages)} pages"
    assert not broken, f"{len(broken)} broken links or anchors: {sorted(set(broken))[:20]}"
