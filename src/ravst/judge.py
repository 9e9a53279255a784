"""``ravst judge``: the paper's automated quality score, a Video-LLM scoring every QA 1-4.

The paper (appendix): "quantitative evaluation is conducted using Video-LLMs with the same 1-4
scoring scale" (original test set 2.54, curated 2.93). The judge sees the clip (and, for Omni,
its audio), the question and the reference answer, and is told the review app's scale word for
word (``ravst.review.kappa.SCALE_LABELS``)::

    ravst judge --qa FILE --videos DIR --backend transformers|vllm|openai --model M --out scores.jsonl
    ravst judge summary --scores scores.jsonl --qa FILE [--curated curated.json] [--db reviews.sqlite] [--json]

One JSONL record per QA: ``qa_id``, ``task``, ``score`` (1-4, or null when the answer held no
score or the backend failed), ``reason``, ``text`` (the raw answer), ``model``, ``backend``,
``rubric`` (SHA-256 prefix of the rubric texts) and ``error``. Resumable like ``infer``: QAs
already in ``--out`` are skipped; a torn last line (a crash mid-write, even inside a UTF-8
character) is dropped; a last record without its newline gets one before anything is appended;
lines are split on ``\\n`` only (U+2028 inside a text is data). A record of another model,
backend or rubric is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ravst.review.kappa import SCALE, SCALE_LABELS, quadratic_weighted_kappa
from ravst.types import QAItem

__all__ = [
    "JUDGE_SYSTEM",
    "JUDGE_USER",
    "JudgeRecord",
    "add_arguments",
    "judge_requests",
    "parse_judge_score",
    "read_judge_scores",
    "run",
    "run_judge",
    "summarize",
]

log = logging.getLogger(__name__)

JUDGE_BACKENDS = ("transformers", "vllm", "openai")

JUDGE_SYSTEM = (
    "You are a meticulous quality reviewer of an audio-visual question-answering dataset.\n"
    "You are given a video clip (with its audio when available), a question about it, and the reference "
    "answer written for it. Check the reference answer against what is seen AND heard: the named sounding "
    "object(s) <object>, the interval <when>[start, end] in seconds, and the boxes <where> "
    "(timestamp: [x1, y1, x2, y2] in pixels of the original frame) of each object while it makes sound.\n"
    "Score the reference answer on this scale:\n"
    + "".join(f"{k} - {SCALE_LABELS[k]}\n" for k in sorted(SCALE, reverse=True))
    + "Reply with one line 'Score: N' where N is 1, 2, 3 or 4, then one short line 'Reason: ...'."
)
JUDGE_USER = (
    "Video: {video} ({duration_s} s).\nQuestion: {question}\nReference answer:\n{answer}\n\n"
    "How good is the reference answer? Reply 'Score: N' then 'Reason: ...'."
)

_SCORE_RE = re.compile(r"score\s*(?:[:=]|is)?\s*\**\s*([1-4])(?![\d.])", re.IGNORECASE)
_TAG_RE = re.compile(r"<score>\s*([1-4])\s*</score>", re.IGNORECASE)
_ALONE_RE = re.compile(r"\s*([1-4])\s*[.!]?\s*")
_REASON_RE = re.compile(r"reason\s*[:=]\s*(.+)", re.IGNORECASE)


def parse_judge_score(text: str) -> tuple[int | None, str]:
    """``(score, reason)`` from a judge's answer: ``Score: N`` (also ``<score>N</score>`` or a
    lone digit), N in 1-4; ``(None, "")`` when there is none.

    >>> parse_judge_score("Score: 3\\nReason: the box is late")
    (3, 'the box is late')
    >>> parse_judge_score("4")
    (4, '')
    >>> parse_judge_score("Score: 7")
    (None, '')
    >>> parse_judge_score("I would say score 2.5")
    (None, '')
    """
    match = _SCORE_RE.search(text) or _TAG_RE.search(text) or _ALONE_RE.fullmatch(text)
    if match is None:
        return None, ""
    reason = _REASON_RE.search(text)
    return int(match.group(1)), "" if reason is None else reason.group(1).strip()


@dataclass(frozen=True)
class JudgeRecord:
    """One QA's judge score (None: unscored, ``error`` says why)."""

    qa_id: str
    task: str
    score: int | None
    reason: str = ""
    text: str = ""
    model: str = ""
    backend: str = ""
    rubric: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"qa_id": self.qa_id, "task": self.task, "score": self.score, "reason": self.reason,
                "text": self.text, "model": self.model, "backend": self.backend, "rubric": self.rubric,
                "error": self.error}


def _record_from_dict(record: Any, where: str) -> JudgeRecord:
    if not isinstance(record, dict) or not isinstance(record.get("qa_id"), str):
        raise ValueError(f"{where}: not a judge record (needs a string 'qa_id')")
    score = record.get("score")
    if score is not None and (isinstance(score, bool) or score not in SCALE):
        raise ValueError(f"{where}: 'score' must be 1-4 or null, got {score!r}")
    error = record.get("error")
    return JudgeRecord(record["qa_id"], str(record.get("task", "")), score, str(record.get("reason", "")),
                       str(record.get("text", "")), str(record.get("model", "")), str(record.get("backend", "")),
                       str(record.get("rubric", "")), None if error is None else str(error))


# -- the JSONL file: one reader and one writer here (to be switched to the package's JSONL module) --
def _read_lines(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], int, bool]:
    """``([(line number, record)], bytes of whole lines, last line lacks its newline)``.

    Splits on ``\\n`` at the byte level BEFORE decoding, so U+2028 / U+0085 inside a text and a
    UTF-8 character torn by a crash in the last line are handled; a torn last line is not
    returned (the caller cuts the file back); a complete last record without ``\\n`` is returned.
    Any other bad line raises ``ValueError`` with the file and line."""
    raw = path.read_bytes()
    cut = raw.rfind(b"\n") + 1
    lines = raw[:cut].split(b"\n")[:-1]
    out: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line.decode("utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{path}: line {number}: not a judge record ({type(exc).__name__}: {exc})") from exc
    tail = raw[cut:]
    if tail.strip():
        try:
            out.append((len(lines) + 1, json.loads(tail.decode("utf-8"))))
            return out, len(raw), True
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            log.warning("%s: line %d is incomplete (interrupted run?): dropped", path, len(lines) + 1)
    return out, cut, False


def _write_record(fh: IO[str], record: JudgeRecord) -> None:
    """One whole line, flushed (``ensure_ascii=False``: the reader splits on ``\\n`` only)."""
    fh.write(json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
    fh.flush()


def read_judge_scores(path: Path) -> tuple[dict[str, JudgeRecord], int]:
    """The records of a judge output by qa_id (a later record of a qa_id wins) and the number
    of records without a score."""
    if not path.is_file():
        raise ValueError(f"{path}: no such judge output")
    records: dict[str, JudgeRecord] = {}
    for number, raw in _read_lines(path)[0]:
        record = _record_from_dict(raw, f"{path}: line {number}")
        records[record.qa_id] = record
    return records, sum(1 for r in records.values() if r.score is None)


def _prepare_out(path: Path, expect: Mapping[str, str], retry_errors: bool) -> set[str]:
    """qa_ids already judged in ``path`` (cut back / completed / rewritten as needed)."""
    if not path.exists():
        return set()
    lines, keep_bytes, needs_newline = _read_lines(path)
    done: set[str] = set()
    kept: list[bytes] = []
    rewrite = False
    for number, raw in lines:
        record = _record_from_dict(raw, f"{path}: line {number}")
        for key, value in expect.items():
            if raw.get(key) not in (None, value):
                raise ValueError(f"{path}: line {number}: field {key!r} is {raw.get(key)!r} but this run has "
                                 f"{value!r}; resuming would mix two runs in one file: choose another --out")
        if retry_errors and record.score is None:
            rewrite = True
            continue
        done.add(record.qa_id)
        kept.append(json.dumps(raw, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
    if rewrite:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    elif needs_newline:
        with open(path, "ab") as fh:
            fh.write(b"\n")
    elif keep_bytes < path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(keep_bytes)
    return done


def rubric_id(system: str, user: str) -> str:
    return hashlib.sha256(f"{system}\0{user}".encode()).hexdigest()[:12]


def judge_requests(items: Iterable[QAItem], videos_dir: Path, system: str = JUDGE_SYSTEM,
                   user: str = JUDGE_USER) -> Iterable[Any]:
    """``InferRequest`` per QA (the rubric as system text, question + reference answer as user
    text), or ``(item, ValueError)`` when its video is missing."""
    from ravst.infer import resolve_video
    from ravst.models.base import InferRequest
    from ravst.parsing import render_answer

    for item in items:
        try:
            path = resolve_video(videos_dir, item.video)
        except ValueError as exc:
            yield item, exc
            continue
        text = user.format(video=item.video, duration_s=f"{item.duration_s:.1f}", question=item.question,
                           answer=render_answer(item.answer))
        yield InferRequest(item, path, system, text)


@dataclass(frozen=True)
class JudgeSummary:
    scored: int
    unscored: int
    skipped: int


def run_judge(items: Sequence[QAItem], videos_dir: Path, backend: Any, out_path: Path, *, backend_name: str,
              system: str = JUDGE_SYSTEM, user: str = JUDGE_USER, batch_size: int = 1,
              limit: int | None = None, retry_errors: bool = False) -> JudgeSummary:
    """Score every QA of ``items`` not yet in ``out_path`` (one record each, appended)."""
    from ravst.infer import _predict_safely

    rubric = rubric_id(system, user)
    done = _prepare_out(out_path, {"model": backend.name, "backend": backend_name, "rubric": rubric}, retry_errors)
    todo = [it for it in items if it.qa_id not in done]
    skipped = len(items) - len(todo)
    if limit is not None:
        todo = todo[: max(0, limit)]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    scored = unscored = 0
    with open(out_path, "a", encoding="utf-8") as fh:

        def emit(item: QAItem, text: str, error: str | None) -> None:
            nonlocal scored, unscored
            score, reason = (None, "") if error else parse_judge_score(text)
            if error is None and score is None:
                error = "no 1-4 score in the judge's answer"
            _write_record(fh, JudgeRecord(item.qa_id, item.task.value, score, reason, text, backend.name,
                                          backend_name, rubric, error))
            scored += score is not None
            unscored += score is None

        batch: list[Any] = []

        def flush() -> None:
            for req, pred in zip(batch, _predict_safely(backend, batch), strict=True):
                emit(req.item, pred.text, pred.error)
            batch.clear()

        for req in judge_requests(todo, videos_dir, system, user):
            if isinstance(req, tuple):
                emit(req[0], "", str(req[1]))
                continue
            batch.append(req)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    return JudgeSummary(scored, unscored, skipped)


# -- summary ---------------------------------------------------------------------------------
def _content_key(item: QAItem) -> tuple[str, str, str, str]:
    from ravst.parsing import render_answer

    return (item.video, item.task.value, item.question, render_answer(item.answer))


def _mean_by_task(scores: Mapping[str, int], tasks: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    groups: dict[str, list[int]] = {"all": list(scores.values())}
    for qa_id, score in scores.items():
        groups.setdefault(tasks[qa_id], []).append(score)
    for name, values in groups.items():
        out[name] = {"n": len(values), "mean_score": sum(values) / len(values) if values else None}
    return out


def summarize(records: Mapping[str, JudgeRecord], items: Sequence[QAItem], *,
              curated: Sequence[QAItem] | None = None,
              human: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, Any]:
    """Mean judge score per task before (every judged QA of ``items``) and after curation (the
    QAs of ``curated``, matched to ``items`` by video, task, question and answer), and the
    quadratic weighted kappa (labels 1-4) between the judge and each reviewer of ``human``
    (``{reviewer: {qa_id: score}}``)."""
    tasks = {item.qa_id: item.task.value for item in items}
    unknown = sorted(set(records) - set(tasks))
    if unknown:
        raise ValueError(f"{len(unknown)} judged qa_id(s) are not in the QA file, e.g. {unknown[:3]}")
    scores = {q: r.score for q, r in records.items() if r.score is not None}
    report: dict[str, Any] = {
        "n_items": len(items), "n_judged": len(records), "n_unscored": len(records) - len(scores),
        "before": _mean_by_task(scores, tasks),
    }
    if curated is not None:
        by_key = {_content_key(item): item.qa_id for item in items}
        kept = [by_key.get(_content_key(item)) for item in curated]
        missing = sum(1 for k in kept if k is None)
        if missing:
            raise ValueError(f"{missing} curated QA(s) are not in the original QA file (same video, task, "
                             "question and answer)")
        report["after"] = _mean_by_task({q: scores[q] for q in kept if q is not None and q in scores}, tasks)
        report["n_curated"] = len(curated)
    if human is not None:
        agreement = {}
        for name, theirs in sorted(human.items()):
            common = sorted(set(theirs) & set(scores))
            kappa = quadratic_weighted_kappa([scores[q] for q in common], [theirs[q] for q in common],
                                             labels=SCALE) if common else math.nan
            agreement[name] = {"n_pairs": len(common), "kappa": None if math.isnan(kappa) else kappa,
                               "exact_agreement": (sum(scores[q] == theirs[q] for q in common) / len(common))
                               if common else None}
        report["judge_vs_reviewers"] = agreement
    return report


def _summary_text(report: Mapping[str, Any]) -> str:
    lines = [f"judged {report['n_judged']} of {report['n_items']} QAs ({report['n_unscored']} without a score)"]
    for part in ("before", "after"):
        if part in report:
            cells = ", ".join(f"{task} {v['mean_score']:.2f} (n={v['n']})" if v["mean_score"] is not None
                              else f"{task} - (n=0)" for task, v in report[part].items())
            lines.append(f"mean judge score {part} curation: {cells}")
    for name, a in report.get("judge_vs_reviewers", {}).items():
        kappa = "undefined" if a["kappa"] is None else f"{a['kappa']:.3f}"
        lines.append(f"judge vs {name}: quadratic weighted kappa {kappa} over {a['n_pairs']} QAs")
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="judge_command", metavar="[summary]")
    parser.add_argument("--qa", type=Path, help="QA file in the official layout")
    parser.add_argument("--videos", type=Path, help="directory of the videos")
    parser.add_argument("--backend", choices=JUDGE_BACKENDS, help="Video-LLM backend (as for 'ravst infer')")
    parser.add_argument("--model", help="model path or hub id (transformers/vllm), model name (openai)")
    parser.add_argument("--out", type=Path, help="scores JSONL to write (appended; resumable)")
    parser.add_argument("--rubric", type=Path, default=None,
                        help="JSON file with 'system' and 'user' texts replacing the built-in rubric "
                             "(user placeholders: {video} {duration_s} {question} {answer})")
    g = parser.add_argument_group("model (as for 'ravst infer')")
    g.add_argument("--fps", type=float, default=1.0)
    g.add_argument("--max-frames", type=int, default=64)
    g.add_argument("--min-pixels", type=int, default=None)
    g.add_argument("--max-pixels", type=int, default=None)
    g.add_argument("--no-audio", action="store_true")
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--device", default="auto")
    g.add_argument("--dtype", default="auto")
    g.add_argument("--tensor-parallel-size", type=int, default=1)
    g.add_argument("--base-url", default=None)
    g.add_argument("--api-key-env", default="OPENAI_API_KEY")
    g.add_argument("--timeout-s", type=float, default=120.0)
    g.add_argument("--batch-size", type=int, default=1)
    g.add_argument("--limit", type=int, default=None)
    g.add_argument("--retry-errors", action="store_true", help="drop unscored records from --out and retry them")
    summary = sub.add_parser("summary", help="mean judge score per task before/after curation; kappa vs reviewers")
    summary.add_argument("--scores", required=True, type=Path, help="a 'ravst judge' output")
    summary.add_argument("--qa", dest="summary_qa", required=True, type=Path, help="the QA file that was judged")
    summary.add_argument("--curated", type=Path, default=None, help="the curated QA file ('ravst review export')")
    summary.add_argument("--db", type=Path, default=None, help="review database: kappa judge vs each reviewer")
    summary.add_argument("--json", action="store_true", help="print JSON instead of text")


def _backend(args: argparse.Namespace) -> Any:
    from ravst.infer import add_arguments as infer_arguments
    from ravst.infer import make_backend

    parser = argparse.ArgumentParser()
    infer_arguments(parser)
    ns = parser.parse_args(["--qa", str(args.qa), "--videos", str(args.videos), "--backend", args.backend,
                            "--out", str(args.out)])
    for key in ("model", "fps", "max_frames", "no_audio", "max_new_tokens", "device", "dtype",
                "tensor_parallel_size", "base_url", "api_key_env", "timeout_s"):
        setattr(ns, key, getattr(args, key))
    for key in ("min_pixels", "max_pixels"):
        if getattr(args, key) is not None:
            setattr(ns, key, getattr(args, key))
    return make_backend(ns)


def _rubric(path: Path | None) -> tuple[str, str]:
    if path is None:
        return JUDGE_SYSTEM, JUDGE_USER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--rubric {path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("system", "user")):
        raise ValueError(f"--rubric {path}: needs string fields 'system' and 'user'")
    try:
        data["user"].format(video="", duration_s="", question="", answer="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"--rubric {path}: bad placeholder in 'user' ({exc})") from exc
    return data["system"], data["user"]


def _run_summary(args: argparse.Namespace) -> int:
    from ravst.formats.official import read_official

    records, _ = read_judge_scores(args.scores)
    items = read_official(args.summary_qa)
    curated = read_official(args.curated) if args.curated is not None else None
    human = None
    if args.db is not None:
        from ravst.review.db import ReviewDB

        if not args.db.is_file():
            raise ValueError(f"--db {args.db}: no such review database")
        db = ReviewDB(args.db)
        source = db.source_bytes()
        if source is not None and hashlib.sha256(source).digest() != hashlib.sha256(
                args.summary_qa.read_bytes()).digest():
            raise ValueError(f"--db {args.db} was made for another QA file than --qa {args.summary_qa}")
        human = db.scores_by_reviewer()
        db.close()
    report = summarize(records, items, curated=curated, human=human)
    sys.stdout.write((json.dumps(report, indent=2) if args.json else _summary_text(report)) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.judge_command == "summary":
            return _run_summary(args)
        missing = [f"--{k}" for k in ("qa", "videos", "backend", "model", "out") if not getattr(args, k)]
        if missing:
            raise ValueError(f"ravst judge needs {' '.join(missing)} (or: ravst judge summary ...)")
        from ravst.formats.official import read_official

        if not args.videos.is_dir():
            raise ValueError(f"--videos {args.videos}: no such directory")
        items = read_official(args.qa)
        system, user = _rubric(args.rubric)
        backend = _backend(args)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 2
    try:
        result = run_judge(items, args.videos, backend, args.out, backend_name=args.backend, system=system,
                           user=user, batch_size=args.batch_size, limit=args.limit, retry_errors=args.retry_errors)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        backend.close()
    if result.unscored:
        log.warning("%s: %d QAs got no score (recorded with the reason in 'error'; --retry-errors retries them)",
                    args.out, result.unscored)
    log.info("%s: %d scored, %d without a score, %d already done", args.out, result.scored, result.unscored,
             result.skipped)
    return 1 if result.unscored and not result.scored and not result.skipped else 0
