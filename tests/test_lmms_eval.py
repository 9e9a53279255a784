"""The R-AVST lmms-eval tasks: they load in lmms-eval, and score like `ravst eval` (one scorer)."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ravst.lmms_eval_tasks import TASKS, task_dir

lmms_tasks = pytest.importorskip("lmms_eval.tasks", reason="lmms-eval not installed (pip install 'ravst[lmms]')")


@pytest.fixture(scope="module")
def env(official_qa_path: Path, videos_dir: Path) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAVST_QA", str(official_qa_path))
        mp.setenv("RAVST_VIDEOS", str(videos_dir))
        mp.setenv("RAVST_ALLOW_MISSING_VIDEOS", "1")  # the official clips are not in ../shared
        mp.setenv("RAVST_SIMILARITY", "exact")
        yield


@pytest.fixture(scope="module")
def tasks(env: None) -> dict[str, Any]:
    return _task_dict()


def _task_dict() -> dict[str, Any]:
    manager = lmms_tasks.TaskManager(include_path=str(task_dir()), include_defaults=False)
    assert set(TASKS) | {"ravst"} <= set(manager.all_tasks)
    tasks = lmms_tasks.get_task_dict(["ravst"], manager)
    flat: dict[str, Any] = {}

    def walk(d: dict[Any, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v)
            else:
                flat[getattr(k, "group_name", k) if not isinstance(k, str) else k] = v

    walk(tasks)
    return flat


def _perturb(answer: str, rng: random.Random) -> str:
    """A deterministic wrong-ish answer: numbers moved, sometimes a name changed or a block cut."""
    def move(m: re.Match[str]) -> str:
        return f"{max(0.0, float(m.group()) + rng.choice([-3.0, -0.5, 0.0, 0.4, 2.0, 7.5])):.1f}"

    text = re.sub(r"\d+\.\d+", move, answer)
    if rng.random() < 0.2:
        text = re.sub(r"<object>[^<]*</object>", "<object>guitar</object>", text, count=1)
    if rng.random() < 0.1:
        text = text[: len(text) // 2]  # a truncated answer
    return text


def _score_with_lmms(task_objs: dict[str, Any], answer_of: Any) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in TASKS:
        task = task_objs[name]
        docs = list(task.test_docs())
        per_metric: dict[str, list[Any]] = {}
        for doc in docs:
            for metric, value in task.process_results(doc, [answer_of(doc)]).items():
                per_metric.setdefault(metric, []).append(value)
        aggs = task.aggregation()
        out[name] = {m: aggs[m](v) for m, v in per_metric.items()}
    return out


def test_include_path_is_printed() -> None:
    proc = subprocess.run([sys.executable, "-m", "ravst.lmms_eval_tasks"], capture_output=True, text=True, check=True)
    assert Path(proc.stdout.strip()) == task_dir()
    assert (task_dir() / "ravst.yaml").is_file()


def test_gt_answers_score_100_through_lmms_eval(tasks: dict[str, Any]) -> None:
    assert {n: len(list(tasks[n].test_docs())) for n in TASKS} == {
        "ravst_temporal": 666, "ravst_spatial": 666, "ravst_spatiotemporal": 306}
    doc = next(iter(tasks["ravst_spatial"].test_docs()))
    text = tasks["ravst_spatial"].doc_to_text(doc)
    assert "<answer>" in text and doc["question"] in text  # Box 2 then the question
    scores = _score_with_lmms(tasks, lambda d: d["answer"])
    for name, figures in scores.items():
        assert figures and all(v == pytest.approx(100.0) for v in figures.values()), (name, figures)


def test_perturbed_answers_equal_ravst_eval(tasks: dict[str, Any], official_qa_path: Path, tmp_path: Path) -> None:
    from ravst.cli import main

    rng = random.Random(7)
    answers: dict[str, str] = {}
    for name in TASKS:
        for d in tasks[name].test_docs():
            answers[d["qa_id"]] = _perturb(d["answer"], rng)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"qa_id": q, "text": t}) + "\n" for q, t in answers.items()), encoding="utf-8")
    assert main(["eval", "--gt", str(official_qa_path), "--pred", str(preds), "--similarity", "exact",
                 "--out", str(tmp_path / "run")]) == 0
    ref = json.loads((tmp_path / "run" / "metrics.json").read_text())["tasks"]
    got = _score_with_lmms(tasks, lambda d: answers[d["qa_id"]])
    for name in TASKS:
        key = name.removeprefix("ravst_")
        for metric, value in got[name].items():
            assert value == pytest.approx(ref[key][metric], abs=1e-9), (name, metric)
        assert 0 < got[name][next(iter(got[name]))] < 100  # the perturbation did change the figures


def test_lmms_eval_evaluator_runs_the_group(env: None, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path, videos_dir: Path) -> None:
    """The real lmms-eval evaluator, with a model object that answers with the GT, prints 100.00."""
    from lmms_eval import evaluator
    from lmms_eval.api.model import lmms

    # a small QA file whose clip exists, so doc_to_visual is really exercised
    qa = tmp_path / "qa.json"
    qa.write_text(json.dumps([{"video_name": "unav100_--HuBNHXu9I", "duration": 60.06, "annotation": [{
        "event_num": 1,
        "AV Temporal Reasoning": [{"Q": "When is the moment man makes sound and is visible?",
                                   "A": "<answer>\n<object>man</object>\n<when>[0.0, 10.2]</when>\n</answer>"}],
        "AV Spatial Reasoning": [{"Q": "Which objects are visible and making sound in 2.0 - 3.0 s?",
                                  "A": "<answer>\n<object>man</object>\n<where>\n2.0: [10.0, 20.0, 200.0, 230.0]\n"
                                       "3.0: [12.0, 20.0, 204.0, 230.0]\n</where>\n</answer>"}],
        "AV ST Reasoning": [{"Q": "When and where is man making sound and visible?",
                             "A": "<answer>\n<object>man</object>\n<when>[2.0, 3.0]</when>\n<where>\n"
                                  "2.0: [10.0, 20.0, 200.0, 230.0]\n3.0: [12.0, 20.0, 204.0, 230.0]\n</where>\n"
                                  "</answer>"}]}]}]), encoding="utf-8")
    monkeypatch.setenv("RAVST_QA", str(qa))
    monkeypatch.delenv("RAVST_ALLOW_MISSING_VIDEOS", raising=False)
    seen: list[str] = []

    class Oracle(lmms):  # type: ignore[misc]
        def generate_until(self, requests: list[Any]) -> list[str]:
            out = []
            for req in requests:
                _ctx, _gen, to_visual, doc_id, task, split = req.args
                doc = self.task_dict[task][split][doc_id]
                seen.extend(to_visual(doc))
                out.append(doc["answer"])
            return out

        def loglikelihood(self, requests: list[Any]) -> list[Any]:
            raise NotImplementedError

        def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
            raise NotImplementedError

    manager = lmms_tasks.TaskManager(include_path=str(task_dir()), include_defaults=False)
    results = evaluator.simple_evaluate(model=Oracle(), tasks=["ravst"], task_manager=manager, log_samples=False,
                                        bootstrap_iters=0)
    assert seen and all(Path(p).resolve() == (videos_dir / "unav100_--HuBNHXu9I.mp4").resolve() for p in seen)
    for name in TASKS:
        figures = {k: v for k, v in results["results"][name].items() if k.endswith(",none") and "stderr" not in k}
        assert figures and all(v == pytest.approx(100.0) for v in figures.values()), (name, figures)
    table = evaluator.make_table(results) if hasattr(evaluator, "make_table") else ""
    assert "ravst_spatial" in str(table) or table == ""
