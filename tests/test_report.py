"""``ravst report``: the HTML page, its content, and how headless Chromium renders it."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ravst.report import cli as report_cli
from ravst.report.data import dataset_records, load_eval

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EVIL = '<script>alert("x")</script> & co'


def _shifted_predictions(qa_path: Path, out: Path) -> None:
    """A "model" that answers with the GT shifted by 6 px and 1 s, and skips every 5th QA."""
    from ravst.formats.official import read_official
    from ravst.formats.predictions import append_predictions
    from ravst.parsing import render_answer
    from ravst.types import Answer, Prediction, Span, Track

    preds = []
    for i, item in enumerate(read_official(qa_path)):
        if i % 5 == 4:
            continue
        a = item.answer
        spans = tuple(Span(s.start_s + 1.0, s.end_s + 1.0) for s in a.spans)
        tracks = tuple(Track(t.name, t.times_s, np.where(t.xyxy > 0, t.xyxy + 6.0, 0.0)) for t in a.tracks)
        preds.append(Prediction(item.qa_id, render_answer(Answer(a.objects, spans, tracks)), model="shifted-gt"))
    append_predictions(out, preds)


def _eval(qa: Path, pred: str, out: Path, unav: Path) -> None:
    from ravst import evaluate

    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--gt", str(qa), "--pred", pred, "--similarity", "exact",
                              "--unav100", str(unav), "--out", str(out), "--quiet"])
    assert evaluate.run(args) == 0


@pytest.fixture(scope="module")
def evals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from ravst import synth

    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    synth.synthesize(data, 2, 11)
    pred = root / "shifted.jsonl"
    _shifted_predictions(data / "qa.json", pred)
    _eval(data / "qa.json", str(pred), root / "eval_shifted", data / "unav100.json")
    _eval(data / "qa.json", "gt", root / "eval_gt", data / "unav100.json")
    return {"root": root, "data": data, "shifted": root / "eval_shifted", "gt": root / "eval_gt"}


@pytest.fixture(scope="module")
def report(evals: dict[str, Path]) -> Path:
    out = evals["root"] / "report.html"
    report_cli.write_report([evals["shifted"], evals["gt"]], out, names=[EVIL, "oracle"],
                            videos=evals["data"] / "videos", samples=4, notes=["a note <b>"])
    return out


def test_report_content(report: Path, evals: dict[str, Path]) -> None:
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "Audio-Visual Spatial Reasoning" in text and "Audio-Visual Temporal Reasoning" in text
    assert EVIL not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    assert "a note &lt;b&gt;" in text
    assert not re.search(r'(src|href)="(?!data:)', text), "the page must be self-contained"
    assert len(re.findall(r'src="data:image/png;base64,', text)) >= 8
    # the numbers of metrics.json are in the tables
    metrics = json.loads((evals["shifted"] / "metrics.json").read_text())
    for value in (metrics["tasks"]["temporal"]["m_tIoU"], metrics["tasks"]["spatiotemporal"]["m_vIoU"],
                  metrics["tasks"]["spatial"]["object_acc"]):
        assert f"<td>{value:.2f}</td>" in text or f'<td class="best">{value:.2f}</td>' in text
    assert '<td class="best">100.00</td>' in text  # the oracle's column maxima
    assert "Produced by: ravst eval" in text and "read_frames_at" in text
    assert "shifted-gt" in text  # the backend named by the predictions' model field


def test_breakdowns_and_categories(evals: dict[str, Path]) -> None:
    from ravst.formats.official import read_official

    run = load_eval(evals["shifted"])
    assert run.backend == "shifted-gt" and run.predictions and run.rows
    items = read_official(evals["data"] / "qa.json")
    cats = {r["qa_id"]: r["category"] for r in run.rows}
    records = dataset_records(items, cats)
    assert len(records) == 2
    labels = {e["label"] for r in records for e in r["events"]}
    scenes = json.loads((evals["data"] / "scenes.json").read_text())["scenes"]
    assert labels == {e["label"] for s in scenes for e in s["events"]}


def test_cli_errors(tmp_path: Path, evals: dict[str, Path]) -> None:
    parser = argparse.ArgumentParser()
    report_cli.add_arguments(parser)
    assert report_cli.run(parser.parse_args(["--eval", str(tmp_path), "--out", str(tmp_path / "r.html")])) == 1
    args = parser.parse_args(["--eval", str(evals["gt"]), "--name", "a", "--name", "b",
                              "--out", str(tmp_path / "r.html")])
    assert report_cli.run(args) == 1
    ok = parser.parse_args(["--eval", str(evals["gt"]), "--out", str(tmp_path / "ok.html")])
    assert report_cli.run(ok) == 0 and (tmp_path / "ok.html").stat().st_size > 1000


def test_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    shot = tmp_path / "report.png"
    messages: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: messages.append(f"requestfailed: {r.url}"))
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            sizes = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            headers = page.evaluate("Array.from(document.querySelectorAll('th')).map(t => t.textContent)")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert messages == []
    assert sizes and all(ok and w > 0 for ok, w in sizes)
    assert "Object Accuracy" in headers and "m_tIoU" in headers
    image = np.asarray(Image.open(shot).convert("RGB")).astype(np.int32)
    assert image.shape[1] >= 1280 and image.shape[0] > 2000
    assert image.std() > 20  # not a blank page
    green = (np.abs(image - np.array([0, 192, 0])).sum(axis=2) < 60).sum()
    assert green > 50  # ground-truth boxes are drawn in the frames


def test_report_on_the_official_test_set(official_qa_path: Path, tmp_path: Path) -> None:
    """The real 1,638-QA file scored against itself: the tables say 100 and the dataset table
    counts what the official file holds."""
    _eval(official_qa_path, "gt", tmp_path / "eval", official_qa_path.parents[1] / "unav100" / "unav100_annotations.json")
    out = report_cli.write_report([tmp_path / "eval"], tmp_path / "r.html", names=["GT"], videos=tmp_path)
    text = out.read_text()
    assert "<td>1070</td>" in text and "<td>1638</td>" in text
    assert "<td>666</td>" in text and "<td>378</td>" in text and "<td>288</td>" in text and "<td>306</td>" in text
    row = re.search(r"<tr><td>GT</td>(.*?)</tr>", text)
    assert row is not None
    assert re.findall(r"<td>([^<]*)</td>", row.group(1)) == ["100.00"] * 11
    assert "1070 of 1070 videos are not in" in text
