"""Report cosmetics: bars of empty groups inside their chart, portrait frames drawn wide enough,
"1 box", and the report's dataset counts equal to the build's stats.json for the same QA file."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ravst.cli import main
from ravst.report import plots


def test_empty_groups_stay_inside_their_chart() -> None:
    fig = plots.bars_figure("m_vIoU by length", ["short", "medium", "long"],
                            {"A": [None, None, None], "B": [None, 40.0, None]})
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    xs = [t.get_position()[0] for t in ax.texts]
    assert len(xs) == 6  # one label per bar, "-" for the missing ones
    assert all(lo < x < hi for x in xs), (lo, hi, xs)
    ticks = list(ax.get_xticks())
    assert ticks == [0, 1, 2] and lo <= -0.5 and hi >= 2.5  # the outer (empty) groups are in the chart


def test_all_empty_chart_says_no_data() -> None:
    ax = plots.bars_figure("x", ["a", "b"], {"A": [None, None]}).axes[0]
    assert "no data" in [t.get_text() for t in ax.texts]


def _frame_widths_px(png: bytes) -> list[int]:
    import io

    import matplotlib.pyplot as plt

    im = plt.imread(io.BytesIO(png))
    red = (im[..., 0] > 0.9) & (im[..., 1] < 0.2) & (im[..., 2] < 0.2)
    cols = np.flatnonzero(red.any(axis=0))
    return [len(run) for run in np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)]


def _red(n: int, w: int, h: int) -> np.ndarray:
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    frames[..., 0] = 255
    return frames


def test_portrait_frames_are_drawn_wide_enough() -> None:
    boxes = [[[10.0, 10.0, 100.0, 100.0]]] * 4
    portrait = _frame_widths_px(plots.frames_with_boxes(_red(4, 360, 640), [1, 2, 3, 4], boxes, {}, "p"))
    square = _frame_widths_px(plots.frames_with_boxes(_red(4, 240, 240), [1, 2, 3, 4], boxes, {}, "s"))
    landscape = _frame_widths_px(plots.frames_with_boxes(_red(4, 320, 240), [1, 2, 3, 4], boxes, {}, "l"))
    assert len(portrait) == len(square) == len(landscape) == 4
    # a 9:16 frame as wide as a square one (it was ~86 px, a third of a landscape frame)
    assert min(portrait) >= 150 and min(portrait) >= 0.9 * min(square)
    assert min(landscape) > min(square)


def test_one_box_is_singular() -> None:
    from ravst.report.render import _answer_text
    from ravst.types import Answer, Track

    one = Answer(("dog",), (), (Track("dog", [1.0, 2.0], [[0, 0, 5, 5], [0, 0, 0, 0]]),))
    two = Answer(("dog",), (), (Track("dog", [1.0, 2.0], [[0, 0, 5, 5], [1, 1, 6, 6]]),))
    assert _answer_text(one).endswith("; 1 box")
    assert _answer_text(two).endswith("; 2 boxes")
    assert _answer_text(Answer(("dog",))).endswith("; 0 boxes")


def test_merged_event_counts_every_label_and_unknown_is_no_category() -> None:
    from ravst.pipeline.stats import NO_CATEGORY, records_from_qas, table1_counts
    from ravst.types import Answer, QAItem, Span, Task

    items = [QAItem(f"v/{e}/temporal/0", "v", 30.0, e, e + 1, Task.TEMPORAL, 0, "q",
                    Answer(("man",), (Span(e * 10.0, e * 10.0 + 5),))) for e in range(3)]
    records = records_from_qas(items, {"v/0/temporal/0": ["man speaking", "people clapping"],
                                       "v/1/temporal/0": ["man speaking"]})
    assert [e["label"] for e in records[0]["events"]] == ["man speaking", "man speaking", NO_CATEGORY]
    assert table1_counts(records, items)["categories"] == 2  # the third event's is unknown: not a category


@pytest.fixture(scope="module")
def build_report(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("report_counts")
    vids = tmp / "videos"
    vids.mkdir()
    (vids / "unav100_--HuBNHXu9I.mp4").symlink_to(videos_dir / "unav100_--HuBNHXu9I.mp4")
    ann = tmp / "ann.json"
    ann.write_text(json.dumps({"version": "t", "database": {"unav100_--HuBNHXu9I": {
        "duration": 60.0, "subset": "test", "annotations": [
            {"segment": [0, 4.2], "label": "man speaking", "label_id": 1},
            {"segment": [28.685, 31.0], "label": "playing piano", "label_id": 3}]}}}))
    config = tmp / "build.yaml"
    config.write_text(f"out_dir: {tmp / 'out'}\nannotations: {ann}\nvideos_dir: {vids}\n"
                      "filter:\n  min_et_ratio: 0.08\nannotate:\n  backend: opencv\n  max_side: 160\n"
                      "qa:\n  require_boxes: false\n")
    assert main(["build", "all", "--config", str(config), "--no-progress"]) == 0
    qa = tmp / "out" / "qa" / "r_avst_qa.json"
    # no --unav100: the categories can only come from the build's sidecar
    assert main(["eval", "--gt", str(qa), "--pred", "gt", "--similarity", "exact", "--out", str(tmp / "e"),
                 "--quiet"]) == 0
    assert main(["report", "--eval", str(tmp / "e"), "--qa", str(qa), "--out", str(tmp / "r.html")]) == 0
    return tmp / "out", (tmp / "r.html").read_text(encoding="utf-8")


def _summary_row(page: str) -> dict[str, str]:
    start = page.index("Dataset statistics")
    block = page[start:page.index("</table>", start)]
    head = [html.unescape(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", block)]
    cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", block)]
    return dict(zip(head, cells, strict=True))


def test_report_counts_equal_the_build_stats(build_report: tuple[Path, str]) -> None:
    out, page = build_report
    stats = json.loads((out / "stats" / "stats.json").read_text())
    qa_set = stats["qa_set"]
    row = _summary_row(page)
    assert row["categories"] == str(qa_set["categories"]) == "2"  # was "1": "(no category)"
    assert row["videos"] == str(qa_set["videos"]) and row["events"] == str(qa_set["events"])
    assert row["QAs"] == str(qa_set["qas"]) == str(stats["qas"])
    assert row["objects / video"] == f"{qa_set['avg_objects_per_video']:.2f}"
    # every event of this build has QAs: the QA set's categories are the build's
    assert qa_set["categories"] == stats["categories"] and qa_set["events"] == stats["events"]
    meta = json.loads((out / "qa" / "r_avst_qa.meta.json").read_text())
    assert {tuple(m["labels"]) for m in meta["qas"]} == {("man speaking",), ("playing piano",)}
