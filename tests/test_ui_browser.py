"""The web chat in a real headless Chromium (Debian's ``chromium``) driven by Playwright.

The app is the real one, served in-process over a small temporary notes folder (the
sample notes, a note on MAE and BERT, and a hostile note holding ``<script>`` and
``<img onerror>``), ingested for real; answers come from the embedded model.

Set ``UI_SCREENSHOT=examples/screenshot.png`` to write the README screenshot from the
first test (the app answering a Chinese question).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

try:  # the notes folder and settings the API tests use
    from test_ui_api import SECRET, add_escape_links, free_port, make_notes, ui_settings
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests.test_ui_api import SECRET, add_escape_links, free_port, make_notes, ui_settings

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ANSWER_TIMEOUT = 240  # seconds; a few on an idle machine
SCREENSHOT = os.environ.get("UI_SCREENSHOT")  # read at import: conftest scrubs NOTES_ASSISTANT_* later


@pytest.fixture(scope="module")
def app(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("ui-browser")
    mp = pytest.MonkeyPatch()
    mp.setenv("NOTES_ASSISTANT_CONFIG", str(root / "no-config.toml"))
    notes, outside = make_notes(root)
    from ingest.pipeline import run_ingest

    settings = ui_settings(root / "data", notes, max_answer_tokens=160)  # room for a whole answer on screen
    run_ingest(settings, notes, embedder=embedder)
    add_escape_links(notes, outside)
    from assistant import ui

    demo, url = ui.launch(settings, port=free_port(), block=False, quiet=True)
    yield {"url": url, "notes": notes, "outside": outside}
    demo.close()
    mp.undo()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(app, browser):
    """A fresh browser session (its own cookies, its own Gradio session)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(app["url"])
    pg.wait_for_selector("#na-input textarea")
    pg.errors = errors
    yield pg
    ctx.close()


def bot_messages(pg) -> list[str]:
    return pg.evaluate("() => [...document.querySelectorAll('#na-chat [data-testid=\"bot\"]')].map(e => e.innerText)")


def sources_text(pg) -> str:
    return pg.locator("#na-sources").inner_text()


def ask(pg, question: str) -> tuple[str, list[str]]:
    """Ask through the text box; returns (the final answer bubble, every text it showed)."""
    before = len(bot_messages(pg))
    pg.locator("#na-input textarea").fill(question)
    pg.locator("#na-ask").click()
    seen: list[str] = []
    deadline = time.time() + ANSWER_TIMEOUT
    while time.time() < deadline:
        bots = bot_messages(pg)
        if len(bots) > before:
            if not seen or seen[-1] != bots[-1]:
                seen.append(bots[-1])
            # the first update of a turn resets the Sources panel; its footer comes with the last
            if re.search(r"Answered by|No answer", sources_text(pg)):
                final = bot_messages(pg)[-1]
                if not seen or seen[-1] != final:
                    seen.append(final)
                return final, seen
        time.sleep(0.03)
    raise AssertionError(f"no answer to {question!r} within {ANSWER_TIMEOUT} s; saw {seen[-3:]}")


def settled_sources(pg, timeout: float = 15.0) -> str:
    """The Sources panel once Gradio's transient "processing" overlay has gone."""
    deadline = time.time() + timeout
    src = sources_text(pg)
    while "processing" in src and time.time() < deadline:
        time.sleep(0.1)
        src = sources_text(pg)
    return src


NOTE_VIEW = "() => document.querySelector('#na-note .na-head, #na-note .na-refused')?.innerText || ''"


def wait_note_change(pg, before: str) -> str:
    """Wait until the note viewer shows something other than ``before``; return its text."""
    pg.wait_for_function(f"(b) => {{ const t = ({NOTE_VIEW})(); return t !== '' && t !== b; }}", arg=before,
                         timeout=60000)
    return pg.locator("#na-note").inner_text()


def open_path(pg, ref: str) -> str:
    before = pg.evaluate(NOTE_VIEW)
    pg.locator("#na-path textarea, #na-path input").first.fill(ref)
    pg.locator("#na-open").click()
    return wait_note_change(pg, before)


def test_chinese_question_streams_an_answer_that_cites_the_note(page):
    final, seen = ask(page, "缩放点积注意力为什么要除以 √d_k？")
    partial = [s for s in seen[:-1] if s.strip() and s.strip() != "…"]
    assert len(set(partial)) >= 2, seen  # the answer grew in place, token by token
    assert "Traceback" not in final and "⚠️" not in final
    src = settled_sources(page)
    assert "深度学习/transformer.md" in src
    markers = sorted(set(re.findall(r"\[(\d+)\]", final.split("Sources:")[0])))
    if markers:  # every [n] in the answer is a numbered source naming the file
        assert "Sources:" in final and "深度学习/transformer.md" in final
        for n in markers:
            assert re.search(rf"\[{n}\] \S+\.(md|txt) · lines \d+", src), (n, src[:400])
        assert page.locator("#na-sources mark").count() >= 1  # the quoted text is highlighted
    # LaTeX in the note renders through KaTeX, not as raw dollars
    assert page.locator("#na-sources .katex").count() >= 1
    assert "$$" not in src and "\\sqrt" not in src
    # the first cited source is already open beside it, with line numbers
    note = page.locator("#na-note").inner_text()
    if markers:
        assert "深度学习/transformer.md" in note and page.locator("#na-note tr.na-hit").count() >= 1
    if SCREENSHOT:
        Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
    assert not page.errors, page.errors


def test_follow_up_uses_the_conversation_and_new_chat_forgets_it(page):
    ask(page, "MAE 是什么？")
    final, _ = ask(page, "它的掩码率呢？")
    src = sources_text(page)
    m = re.search(r"Follow-up read as: (.+)", src)
    assert m and "MAE" in m.group(1), src[:300]
    assert re.search(r"自监督\.md · lines [5-7]", src), src[:400]  # the MAE passage (lines 5-7) is a source
    assert len(bot_messages(page)) == 2

    page.locator("#na-new").click()
    page.wait_for_function("() => document.querySelectorAll('#na-chat [data-testid=\"bot\"]').length === 0")
    ask(page, "它的掩码率呢？")
    assert "Follow-up read as" not in sources_text(page)
    assert len(bot_messages(page)) == 1


def test_new_chat_mid_answer_stops_it_and_the_next_answer_is_clean(page):
    page.locator("#na-input textarea").fill("缩放点积注意力为什么要除以 √d_k？")
    page.locator("#na-ask").click()
    page.wait_for_function(  # streaming has begun
        "() => { const b = document.querySelectorAll('#na-chat [data-testid=\"bot\"]');"
        " return b.length === 1 && b[0].innerText.trim().length > 3; }", timeout=ANSWER_TIMEOUT * 1000)
    page.locator("#na-new").click()
    page.wait_for_function("() => document.querySelectorAll('#na-chat [data-testid=\"bot\"]').length === 0")
    time.sleep(2.0)  # the abandoned answer must not come back into the new chat
    assert bot_messages(page) == []
    final, _ = ask(page, "Dropout 常用的丢弃概率是多少？")
    assert len(bot_messages(page)) == 1 and "⚠️" not in final
    assert "深度学习/正则化.md" in sources_text(page)
    assert "Follow-up read as" not in sources_text(page)
    assert not page.errors, page.errors


def test_open_a_source_shows_the_note_around_it_with_line_numbers(page, app):
    ask(page, "多头注意力用了几个头？")
    page.locator("#na-pick input").click()
    options = page.locator('#na-pick [data-testid="dropdown-option"]')
    assert options.count() >= 2
    label = options.nth(1).inner_text().strip()
    ref = label.split(" ", 1)[1]
    file, lines = ref.rsplit(":", 1)
    a, _, b = lines.partition("-")
    a, b = int(a), int(b or a)
    before = page.evaluate(NOTE_VIEW)
    options.nth(1).click()
    wait_note_change(page, before)
    head = page.locator("#na-note .na-head").inner_text()
    assert file in head and f"lines {a}" in head
    hits = page.locator("#na-note tr.na-hit")
    assert hits.count() == b - a + 1
    assert hits.first.locator("td.na-ln").inner_text().strip() == str(a)
    text = (app["notes"] / file).read_text(encoding="utf-8").split("\n")
    assert text[a - 1].strip()[:12] in hits.first.inner_text() or not text[a - 1].strip()
    # context lines around the citation, numbered
    numbers = [int(x) for x in page.locator("#na-note td.na-ln").all_inner_texts()]
    assert numbers == list(range(numbers[0], numbers[-1] + 1)) and numbers[0] <= a and numbers[-1] >= b


def test_hostile_note_is_shown_as_text_and_runs_nothing(page):
    ask(page, "梯度裁剪的阈值是多少？")
    src = sources_text(page)
    assert "梯度裁剪.md" in src
    assert "<script>window.__pwned=1</script>" in src  # visible as text...
    assert '<img src=x onerror="window.__pwned=1">' in src
    note = open_path(page, "梯度裁剪.md")
    assert "<script>window.__pwned=1</script>" in note
    time.sleep(1.0)  # give a broken image's onerror every chance to fire
    for sel in ("#na-sources", "#na-chat", "#na-note"):  # ...and never as elements
        assert page.locator(f"{sel} script").count() == 0
        assert page.locator(f"{sel} img").count() == 0
    assert page.evaluate("() => typeof window.__pwned") == "undefined"


def test_paths_outside_the_notes_folder_cannot_be_opened(page, app):
    ok = open_path(page, "深度学习/transformer.md:22")
    assert "深度学习/transformer.md" in ok and "多头注意力" in ok
    for attempt in ["../outside/secret.md", str(app["outside"] / "secret.md"), "/etc/passwd", "link.md",
                    "outdir/secret.md:3"]:
        shown = open_path(page, attempt)
        assert "refused" in shown or "cannot open" in shown, (attempt, shown)
        assert SECRET not in shown and "root:" not in shown
        assert page.locator("#na-note table").count() == 0


def test_status_panel_and_reingest(page, app):
    page.locator("#na-status-box button.label-wrap").click()
    page.wait_for_function("() => /Answering model/.test(document.querySelector('#na-status')?.innerText)")
    status = page.locator("#na-status").inner_text()
    assert str(app["notes"].resolve()) in status
    assert re.search(r"Indexed \d+ files, \d+ chunks", status)
    assert "embedded:" in status
    page.locator("#na-reingest").click()
    page.wait_for_function("() => /✅|⚠️/.test(document.querySelector('#na-ingest-msg')?.innerText)", timeout=120000)
    msg = page.locator("#na-ingest-msg").inner_text()
    assert msg.startswith("✅") and "files" in msg
