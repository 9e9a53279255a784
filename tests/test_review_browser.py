"""End to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright for Python):
log in with a token, play the clip, see the ground-truth boxes drawn in sync, score with the
keyboard, see progress move; untrusted text stays text."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("RAVST_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("uvicorn")

from ravst.review.db import ReviewDB  # noqa: E402
from review_helpers import (  # noqa: E402
    CLIP_H,
    CLIP_W,
    XSS_OBJECT,
    XSS_QUESTION,
    free_port,
    make_clip,
    make_data_dir,
    start_server,
)

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# bounding box of the opaque pixels of the overlay canvas, or null when it is empty
CANVAS_BBOX = """() => {
  const c = document.getElementById('overlay');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
  for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
    if (d[(y * c.width + x) * 4 + 3] > 0) {
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
  }
  return x1 < 0 ? null : {x0, y0, x1, y1, w: c.width, h: c.height};
}"""


def seek(page, t: float) -> None:
    page.evaluate(
        """(t) => new Promise((done) => {
             const v = document.getElementById('video');
             v.addEventListener('seeked', () => requestAnimationFrame(() => done()), {once: true});
             v.currentTime = t;
           })""",
        t,
    )


REAL_CLIP = "unav100_--HuBNHXu9I.mp4"  # H.264 + AAC, 320x240, 60 s (../shared/data/videos)


@pytest.fixture(params=["generated-webm", "real-mp4"])
def server(request: pytest.FixtureRequest, tmp_path: Path):
    """The real server over two videos; the clip is a generated VP8 WebM or a real UnAV-100 MP4."""
    if request.param == "real-mp4":
        clip = request.getfixturevalue("videos_dir") / REAL_CLIP
        if not clip.exists():
            pytest.skip(f"{clip} is absent")
        size, duration_s = (320, 240), 60.0
    else:
        clip = make_clip(tmp_path / "clip.webm")
        size, duration_s = (CLIP_W, CLIP_H), 4.0
    data = make_data_dir(tmp_path / "data", ["clipA", "clipB"], clip=clip, obj=XSS_OBJECT,
                         suffix=XSS_QUESTION, duration_s=duration_s)
    db_path = tmp_path / "reviews.sqlite"
    token = ReviewDB(db_path).add_reviewer("ana")
    port = free_port()
    proc = start_server(data, db_path, port, tmp_path / "server.log")
    try:
        yield f"http://127.0.0.1:{port}", token, db_path, size
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_review_in_headless_chromium(server, tmp_path: Path) -> None:
    base, token, db_path, (clip_w, clip_h) = server
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(base + "/")
            page.fill("#token", "not-a-token")
            page.click("#login")
            page.wait_for_selector("#login-error:has-text('Unknown token')")

            page.fill("#token", token)
            page.click("#login")
            page.wait_for_selector("#item-view:not([hidden])")
            assert page.inner_text("#reviewer-name") == "ana"
            progress = page.locator("#progress-text")
            sync_api.expect(progress).to_contain_text("You: 0 scored, 6 to go")

            # item 1 is temporal: no box to draw; score it with the keyboard
            sync_api.expect(page.locator("#item-kind")).to_have_text("temporal")
            page.wait_for_function("() => document.getElementById('video').readyState >= 2")
            assert page.evaluate(CANVAS_BBOX) is None
            page.keyboard.press("3")
            sync_api.expect(progress).to_contain_text("You: 1 scored, 5 to go")

            # item 2 is spatial: the question carries an HTML payload, shown as text
            sync_api.expect(page.locator("#item-kind")).to_have_text("spatial-sounding")
            question = page.inner_text("#question")
            assert question.endswith(XSS_QUESTION.strip())
            assert page.inner_text("#answer-objects") == XSS_OBJECT
            assert page.locator("#question img, #question script, #answer b").count() == 0
            assert page.evaluate("window.__xss === undefined")

            # play: the clip runs and the boxes are drawn over it
            page.wait_for_function("() => document.getElementById('video').readyState >= 2")
            page.evaluate("document.getElementById('video').play()")
            page.wait_for_function("() => document.getElementById('video').currentTime > 0.6", timeout=15000)
            page.evaluate("document.getElementById('video').pause()")
            assert page.evaluate(CANVAS_BBOX) is not None

            # in sync with playback: the GT box at t=0 is x 10..50, at t=2 it is x 50..90 (original pixels)
            seek(page, 0.0)
            at0 = page.evaluate(CANVAS_BBOX)
            seek(page, 2.0)
            at2 = page.evaluate(CANVAS_BBOX)
            sx, sy = at0["w"] / clip_w, at0["h"] / clip_h
            assert abs(at0["x0"] - 10 * sx) <= 3 and abs(at2["x0"] - 50 * sx) <= 3, (at0, at2)
            assert abs(at2["y1"] - 80 * sy) <= 3, at2
            page.screenshot(path=str(artifacts_dir(tmp_path) / f"review-{clip_w}x{clip_h}.png"), full_page=True)

            # a note, then score 4 with the keyboard (focus off the text area)
            page.fill("#note", "box is a bit late <b>x</b>")
            page.locator("#question").click()
            page.keyboard.press("4")
            sync_api.expect(progress).to_contain_text("You: 2 scored, 4 to go")
            sync_api.expect(page.locator("#history li")).to_have_count(3)
            assert "→ 4" in page.locator("#history li").nth(1).inner_text()
            assert not dialogs
        finally:
            browser.close()

    stored = sqlite3.connect(db_path).execute("SELECT score, note FROM scores ORDER BY id").fetchall()
    assert stored == [(3, ""), (4, "box is a bit late <b>x</b>")]


def artifacts_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$RAVST_TEST_ARTIFACTS`` (kept by CI) or the test's tmp folder."""
    folder = Path(os.environ.get("RAVST_TEST_ARTIFACTS") or tmp_path) / "review-browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_build_folder_portrait_clip_unmute_hint_flags_and_all_done(tmp_path: Path) -> None:
    """A build folder with a portrait clip (symlinked into the videos folder): the clip fits the
    window with its controls visible, the unmute hint shows until the sound is on, the flagged
    item comes first with its reason, and "All done" hides the last player."""
    from review_helpers import make_build_dir

    portrait_w, portrait_h = 120, 240
    library = tmp_path / "library"
    clip = make_clip(library / "tall.webm", seconds=2, width=portrait_w, height=portrait_h)
    build = make_build_dir(tmp_path / "build", ["tall"], flags={"tall/0/spatial/0": [
        {"reason": "box_jump", "object": "dog", "detail": "0 s -> 1 s: centre moved 200 px (75% of the frame diagonal)"}]})
    videos = tmp_path / "videos"
    videos.mkdir()
    os.symlink(clip, videos / "tall.webm")
    db_path = tmp_path / "reviews.sqlite"
    token = ReviewDB(db_path).add_reviewer("ana")
    port = free_port()
    proc = start_server(None, db_path, port, tmp_path / "server.log",
                        ["--build", str(build), "--videos", str(videos), "--allow-root", str(library)])
    shots = artifacts_dir(tmp_path)
    viewport = {"width": 1280, "height": 640}
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport=viewport)
                page.goto(f"http://127.0.0.1:{port}/")
                page.fill("#token", token)
                page.click("#login")
                page.wait_for_selector("#item-view:not([hidden])")
                sync_api.expect(page.locator("#item-kind")).to_have_text("spatial-sounding")
                sync_api.expect(page.locator("#flags")).to_have_text("Flagged for review: box_jump (dog): 0 s -> 1 s: centre moved 200 px (75% of the frame diagonal)")
                page.wait_for_function("() => document.getElementById('video').readyState >= 1")
                page.wait_for_function("() => document.getElementById('video').style.height !== ''")
                box = page.locator("#video").bounding_box()
                assert box is not None
                # the whole element, controls included, is inside the window; the aspect is kept
                assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], box
                assert abs(box["width"] / box["height"] - portrait_w / portrait_h) < 0.05, box
                canvas = page.locator("#overlay").bounding_box()
                assert canvas is not None and abs(canvas["width"] - box["width"]) <= 1, (canvas, box)
                sync_api.expect(page.locator("#unmute-hint")).to_be_visible()
                page.screenshot(path=str(shots / "portrait-muted.png"), full_page=True)
                page.locator("#question").click()
                page.keyboard.press("m")
                sync_api.expect(page.locator("#unmute-hint")).to_be_hidden()
                assert page.evaluate("document.getElementById('video').muted") is False
                page.screenshot(path=str(shots / "portrait-unmuted.png"), full_page=True)
                page.evaluate("document.getElementById('video').play()")
                for _ in range(3):
                    page.keyboard.press("3")
                    page.wait_for_timeout(300)
                sync_api.expect(page.locator("#done")).to_be_visible()
                sync_api.expect(page.locator("#video")).to_be_hidden()
                sync_api.expect(page.locator("#item-view")).to_be_hidden()
                assert page.evaluate("document.getElementById('video').paused")
                page.screenshot(path=str(shots / "all-done.png"), full_page=True)
            finally:
                browser.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    print(f"screenshots in {shots}")
    assert {p.name for p in shots.glob("*.png")} >= {"portrait-muted.png", "portrait-unmuted.png", "all-done.png"}
    stored = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    assert stored == 3
