"""--tasks / --subset balanced (ravst.subsets), --bootstrap and ``ravst compare`` (ravst.compare)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ravst.compare import bootstrap_figures, compare_runs, figure_columns
from ravst.evaluate import evaluate
from ravst.formats.official import read_official
from ravst.similarity import get_similarity
from ravst.subsets import balanced_subset, parse_tasks, select, shipped_balanced_ids
from ravst.types import Answer, QAItem, Span, Task

GOLDEN = Path(__file__).parent / "golden"
EXACT = get_similarity("exact")


def _item(i: int, task: Task, video: str | None = None) -> QAItem:
    return QAItem(f"v{i}/0/{task.value}/0", video or f"v{i}", 30.0, 0, 1, task, 0, "q",
                  Answer(objects=("dog",), spans=(Span(0.0, 10.0),)))


# ---------------------------------------------------------------------------------------------
# selections


def test_parse_tasks():
    assert parse_tasks("spatiotemporal,temporal") == (Task.TEMPORAL, Task.SPATIOTEMPORAL)
    with pytest.raises(ValueError, match="unknown task 'spatio'"):
        parse_tasks("temporal,spatio")
    with pytest.raises(ValueError, match="comma list"):
        parse_tasks(" , ")


def test_balanced_subset_small_case():
    items = [_item(i, Task.TEMPORAL) for i in range(5)] + [_item(10 + i, Task.SPATIAL) for i in range(3)]
    items += [_item(20 + i, Task.SPATIOTEMPORAL) for i in range(2)]
    sub = balanced_subset(items, seed=0)
    # the smallest task has 2 QAs: 2 of each, in the input order
    assert Counter(it.task for it in sub) == {Task.TEMPORAL: 2, Task.SPATIAL: 2, Task.SPATIOTEMPORAL: 2}
    assert [items.index(it) for it in sub] == sorted(items.index(it) for it in sub)
    assert balanced_subset(items, seed=0) == sub
    assert {it.qa_id for it in sub if it.task is Task.SPATIOTEMPORAL} == {"v20/0/spatiotemporal/0",
                                                                         "v21/0/spatiotemporal/0"}
    assert select(items, tasks=(Task.SPATIAL,), subset="balanced", seed=0) == [
        it for it in sub if it.task is Task.SPATIAL]
    with pytest.raises(ValueError, match="unknown subset"):
        select(items, subset="tiny")


def test_balanced_subset_of_the_official_test_set_is_the_shipped_list(official_qa_path):
    items = read_official(official_qa_path)
    sub = balanced_subset(items, seed=0)
    assert Counter(it.task for it in sub) == {Task.TEMPORAL: 306, Task.SPATIAL: 306, Task.SPATIOTEMPORAL: 306}
    assert [it.qa_id for it in sub] == shipped_balanced_ids()
    assert [it.qa_id for it in balanced_subset(items, seed=1)] != shipped_balanced_ids()


def test_eval_cli_tasks_and_subset(tmp_path, capsys):
    pytest.importorskip("ravst.formats.predictions")
    from ravst.cli import main

    rc = main(["eval", "--gt", str(GOLDEN / "gt.json"), "--pred", str(GOLDEN / "pred.jsonl"),
               "--similarity", "exact", "--tasks", "temporal", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    # only the 2 temporal QAs; the 4 other-task predictions are outside the selection, not unknown
    assert m["n_qas"] == 2 and m["n_unknown_qa_ids"] == 1
    assert m["selection"] == {"tasks": ["temporal"], "subset": "all", "seed": None, "n_qas_in_gt": 7,
                              "n_qas": 2, "n_predictions_outside": 5}
    assert m["tasks"]["temporal"]["m_tIoU"] == 25.0 and m["tasks"]["spatial"]["n"] == 0
    with pytest.raises(SystemExit):  # argparse rejects an unknown task with its message
        main(["eval", "--gt", str(GOLDEN / "gt.json"), "--pred", "gt", "--tasks", "bogus"])


# ---------------------------------------------------------------------------------------------
# bootstrap


@pytest.fixture(scope="module")
def golden_result():
    from ravst.formats.predictions import read_predictions

    items = read_official(GOLDEN / "gt.json")
    return evaluate(items, list(read_predictions(GOLDEN / "pred.jsonl")), similarity=EXACT)


def test_figure_columns_reproduce_every_figure_of_metrics_json(golden_result):
    for mode, tasks in (("lenient", golden_result.metrics["tasks"]), ("strict", golden_result.metrics["strict"]["tasks"])):
        cols = figure_columns([r[mode] for r in golden_result.rows])
        for name, (vals, mask) in cols.items():
            if name == "parse_rate":
                continue
            task, key = name.split(".", 1)
            want = tasks[task][key]
            assert (want is None) == (not mask.any()), name
            if want is not None:
                assert round(float(vals[mask].mean()), 6) == pytest.approx(want, abs=1e-6), name
        figures = {f"{t}.{k}" for t, d in tasks.items() for k in d if not k.startswith("n")}
        assert figures == set(cols) - {"parse_rate"}


def test_bootstrap_is_reproducible_and_brackets_the_point(golden_result):
    a = bootstrap_figures(golden_result.rows, "lenient", n=300, seed=5)
    assert bootstrap_figures(golden_result.rows, "lenient", n=300, seed=5) == a
    point, ci = a
    for name, value in point.items():
        if value is not None:
            assert ci[name][0] <= value + 1e-9 and value <= ci[name][1] + 1e-9, name


def test_bootstrap_interval_agrees_with_the_normal_approximation():
    # 4000 videos, one temporal QA each, tIoU uniform on [0, 1]: the mean's 95 % interval is
    # mean +- 1.96 sd / sqrt(n) (central limit theorem); the bootstrap must agree closely
    rng = np.random.default_rng(0)
    n = 4000
    t = rng.uniform(0, 1, n)
    rows = [{"qa_id": f"v{i}/0/temporal/0", "video": f"v{i}", "kind": "temporal",
             "lenient": {"kind": "temporal", "parsed": True, "t_iou": float(t[i])}} for i in range(n)]
    point, ci = bootstrap_figures(rows, "lenient", n=2000, seed=1)
    assert bootstrap_figures(rows, "lenient", n=2000, seed=2)[1] != ci  # the seed matters
    half = 1.96 * 100 * t.std(ddof=1) / np.sqrt(n)
    lo, hi = ci["temporal.m_tIoU"]
    assert point["temporal.m_tIoU"] == pytest.approx(100 * t.mean(), abs=1e-6)
    assert lo == pytest.approx(100 * t.mean() - half, abs=0.1 * half)
    assert hi == pytest.approx(100 * t.mean() + half, abs=0.1 * half)
    # R1@0.5 is a proportion p: p +- 1.96 sqrt(p (1 - p) / n)
    p = float((t >= 0.5).mean())
    half_p = 1.96 * 100 * np.sqrt(p * (1 - p) / n)
    lo, hi = ci["temporal.R1@0.5"]
    assert (hi - lo) / 2 == pytest.approx(half_p, rel=0.1)


def test_bootstrap_resamples_videos_not_qas():
    # 100 videos with 10 identical QAs each: the interval is that of 100 values, ~sqrt(10) wider
    rng = np.random.default_rng(2)
    v = rng.uniform(0, 1, 100)
    rows = [{"qa_id": f"v{i}/0/temporal/{k}", "video": f"v{i}", "kind": "temporal",
             "lenient": {"kind": "temporal", "parsed": True, "t_iou": float(v[i])}}
            for i in range(100) for k in range(10)]
    _, ci = bootstrap_figures(rows, "lenient", n=2000, seed=0)
    half = 1.96 * 100 * v.std(ddof=1) / np.sqrt(100)
    lo, hi = ci["temporal.m_tIoU"]
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)


def test_eval_bootstrap_adds_intervals(tmp_path, capsys):
    pytest.importorskip("ravst.formats.predictions")
    from ravst.cli import main

    args = ["eval", "--gt", str(GOLDEN / "gt.json"), "--pred", str(GOLDEN / "pred.jsonl"), "--similarity",
            "exact", "--bootstrap", "200", "--seed", "3"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "lenient 95% CI" in out and "Tube vIoU" in out
    assert main([*args, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["ci"] == mb["ci"]
    assert ma["ci"]["n_bootstrap"] == 200 and ma["ci"]["seed"] == 3
    lo, hi = ma["ci"]["tasks"]["temporal"]["m_tIoU"]
    # two temporal QAs in two videos (tIoU 0.5 and 0): replicates can only be 0, 25 or 50
    assert {lo, hi} <= {0.0, 25.0, 50.0}
    assert set(ma["ci"]["strict"]["tasks"]) == {"temporal", "spatial", "spatiotemporal"}


# ---------------------------------------------------------------------------------------------
# compare


def _rows(values, videos=None):
    return [{"qa_id": f"q{i}", "video": (videos or [f"v{i}" for i in range(len(values))])[i], "kind": "temporal",
             "lenient": {"kind": "temporal", "parsed": True, "t_iou": float(x)},
             "strict": {"kind": "temporal", "parsed": True, "t_iou": float(x)}} for i, x in enumerate(values)]


def test_compare_identical_runs():
    rows = _rows(np.linspace(0, 1, 50))
    r = compare_runs(rows, rows, n=500, seed=0)
    f = r["figures"]["temporal.m_tIoU"]
    assert f["diff"] == 0.0 and f["ci"] == [0.0, 0.0] and f["p"] == 1.0


def test_compare_paired_difference_and_p_value():
    rng = np.random.default_rng(4)
    a = rng.uniform(0, 0.8, 400)
    b = a + 0.05 + rng.normal(0, 0.01, 400)  # B is better by 5 points on every QA
    r = compare_runs(_rows(a), _rows(b), n=1000, seed=0)
    f = r["figures"]["temporal.m_tIoU"]
    assert f["diff"] == pytest.approx(100 * float((b - a).mean()), abs=1e-6)
    # paired: the interval is that of the per-QA differences (sd ~1 point), not of the levels
    d = 100 * (b - a)
    half = 1.96 * d.std(ddof=1) / np.sqrt(400)
    assert (f["ci"][1] - f["ci"][0]) / 2 == pytest.approx(half, rel=0.15)
    assert f["p"] == pytest.approx(1 / 1001)
    same = compare_runs(_rows(a), _rows(a + rng.normal(0, 0.05, 400)), n=1000, seed=0)
    assert same["figures"]["temporal.m_tIoU"]["p"] > 0.01
    assert compare_runs(_rows(a), _rows(b), n=1000, seed=0) == r


def test_compare_cli(tmp_path, capsys):
    pytest.importorskip("ravst.formats.predictions")
    from ravst.cli import main

    gt = str(GOLDEN / "gt.json")
    assert main(["eval", "--gt", gt, "--pred", "gt", "--similarity", "exact", "--out", str(tmp_path / "gt"),
                 "--quiet"]) == 0
    assert main(["eval", "--gt", gt, "--pred", str(GOLDEN / "pred.jsonl"), "--similarity", "exact",
                 "--out", str(tmp_path / "model"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "gt"), str(tmp_path / "model"), "--bootstrap", "200",
                 "--out", str(tmp_path / "cmp.json")]) == 0
    out = capsys.readouterr().out
    assert "temporal.m_tIoU" in out and "p" in out
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    # GT scores 100, the model 25 on temporal (golden): B - A = -75
    assert cmp["figures"]["temporal.m_tIoU"]["diff"] == -75.0 and cmp["n_qas"] == 7
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path / "model")]) == 1


def test_report_shows_tube_viou_and_intervals(tmp_path):
    pytest.importorskip("ravst.formats.predictions")
    from ravst.cli import main
    from ravst.report.data import load_eval
    from ravst.report.render import _main_tables

    assert main(["eval", "--gt", str(GOLDEN / "gt.json"), "--pred", str(GOLDEN / "pred.jsonl"), "--similarity",
                 "exact", "--bootstrap", "100", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    html = _main_tables([load_eval(tmp_path / "run", name="golden")], strict=False)
    assert "Tube vIoU" in html and "95 % confidence intervals" in html
    assert "69.17" in html  # spatial m_tube_vIoU of the golden run, worked out in test_evaluate


def test_scipy_optimize_is_imported_lazily():
    import subprocess
    import sys

    code = "import sys, ravst.metrics.functional, ravst.cli; print('scipy.optimize' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_infer_tasks_and_subset_select_the_qas(tmp_path):
    from ravst.cli import main

    videos = tmp_path / "videos"
    videos.mkdir()
    out = tmp_path / "p.jsonl"
    # no video files: every QA fails and is recorded (exit code 1), enough to see which QAs were run
    main(["infer", "--qa", str(GOLDEN / "gt.json"), "--videos", str(videos), "--backend", "full-span",
          "--out", str(out), "--tasks", "temporal,spatiotemporal"])
    ids = [json.loads(line)["qa_id"] for line in out.read_text().splitlines()]
    assert ids == ["vidA/0/temporal/0", "vidA/0/spatiotemporal/0", "vidB/0/temporal/0", "vidB/0/spatiotemporal/0"]
    out2 = tmp_path / "b.jsonl"
    main(["infer", "--qa", str(GOLDEN / "gt.json"), "--videos", str(videos), "--backend", "full-span",
          "--out", str(out2), "--subset", "balanced"])
    ids = [json.loads(line)["qa_id"] for line in out2.read_text().splitlines()]
    items = read_official(GOLDEN / "gt.json")
    assert ids == [it.qa_id for it in balanced_subset(items, seed=0)] and len(ids) == 6
