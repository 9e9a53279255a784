"""``ravst eval``: score predictions against ground truth and write metrics.json, per-QA JSONL and CSV.

Every prediction is parsed twice (lm-eval-harness style): **lenient** (what real models emit)
and **strict** (only answers in the official layout count; anything else scores as unparsable).
Both are scored with the chosen protocol (``ravst`` or ``vstar``) and reported. A QA without a
prediction counts as unparsable; predictions whose ``qa_id`` is not in the GT are counted and
ignored (with a warning giving examples; the command fails when none matches the GT); a repeated
``qa_id`` keeps the last line. Boxes not in original pixels are converted (``ravst.coords``)
before scoring.

The predictions file is read with ``ravst.formats.predictions.load_predictions``: a truncated
last line (a crashed run, even one cut inside a UTF-8 character) is skipped with a warning and
counted; any other bad line (invalid JSON, nested too deeply, a field of the wrong type or out of
range such as ``original_wh`` ``[NaN, 360]``) is an error naming the file, the line and the
``qa_id``, unless ``--skip-bad-lines`` (then it is skipped and counted like the torn line).
``--video-sizes`` is checked when read: errors name the file and the video.

``--pred gt`` scores the ground truth against itself (rendered in the official layout and
parsed back), which must give 100 on every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ravst.jsonl import write_jsonl_atomic
from ravst.types import Answer, Prediction, QAItem, VideoRecord

if TYPE_CHECKING:  # the scoring modules (numpy) are imported where used: ``ravst eval --help`` stays light
    from ravst.metrics.ravst_protocol import QAScore

__all__ = [
    "LENGTH_BUCKETS",
    "EvalResult",
    "NoMatchingPredictionsError",
    "add_arguments",
    "category_of",
    "evaluate",
    "format_tables",
    "length_bucket",
    "load_video_sizes",
    "run",
    "write_outputs",
]

log = logging.getLogger(__name__)

LENGTH_BUCKETS = (("short", 0.0, 20.0), ("medium", 20.0, 40.0), ("long", 40.0, float("inf")))
"""Video-length groups in seconds, [lo, hi); "long" is 40-60 s in R-AVST (60 s clips)."""


N_EXAMPLES = 5
"""How many example ids warnings and ``metrics.json`` list."""


class NoMatchingPredictionsError(ValueError):
    """No prediction ``qa_id`` is in the ground truth (e.g. the wrong GT file)."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    answer: Answer


@dataclass
class EvalResult:
    """Everything one evaluation produced."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)


def length_bucket(duration_s: float) -> str:
    for name, lo, hi in LENGTH_BUCKETS:
        if lo <= duration_s < hi:
            return name
    return LENGTH_BUCKETS[-1][0]


def category_of(item: QAItem, records: Mapping[str, VideoRecord] | None) -> str | None:
    """The UnAV-100 event label of a QA: ``item.category`` or the event of the video whose
    interval overlaps the QA's interval (GT span, else the question's span) the most."""
    if item.category:
        return item.category
    if not records or item.video not in records:
        return None
    events = records[item.video].events
    if not events:
        return None
    span = item.answer.span or item.query_span
    if span is None:
        return events[0].label if len({e.label for e in events}) == 1 else None
    best, best_iou = None, -1.0
    for e in events:
        inter = max(0.0, min(e.span.end_s, span.end_s) - max(e.span.start_s, span.start_s))
        union = max(e.span.end_s, span.end_s) - min(e.span.start_s, span.start_s)
        iou = inter / union if union > 0 else 0.0
        if iou > best_iou:
            best, best_iou = e.label, iou
    return best


def _strict_answer(parse: Any) -> Answer | None:
    return parse.answer if parse.strict_ok else None


def evaluate(
    items: Sequence[QAItem],
    predictions: Sequence[Prediction] | None,
    *,
    protocol: str = "ravst",
    similarity: Any,
    unav_records: Mapping[str, VideoRecord] | None = None,
    video_sizes: Mapping[str, tuple[float, float]] | None = None,
    bad_prediction_lines: Sequence[int] = (),
    n_gt_zero_length_skipped: int = 0,
) -> EvalResult:
    """Score ``predictions`` (``None``: the GT itself) against ``items``; pure apart from logging.

    ``bad_prediction_lines`` (line numbers the reader skipped) and ``n_gt_zero_length_skipped``
    (GT events left out by the reader) are only reported in the metrics and the header line.
    """
    from ravst.coords import convert_answer, has_boxes, needs_original_size
    from ravst.metrics import PROTOCOLS, score_split
    from ravst.metrics.ravst_protocol import KINDS, aggregate
    from ravst.parsing import parse_answer, render_answer

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(PROTOCOLS)}")
    if predictions is None:
        preds = {it.qa_id: Prediction(it.qa_id, render_answer(it.answer), model="gt") for it in items}
        n_dupes = 0
    else:
        preds = {}
        n_dupes = 0
        for p in predictions:
            if p.qa_id in preds:
                n_dupes += 1  # the last one wins, like a resumed run appending
            preds[p.qa_id] = p
    gt_ids = {it.qa_id for it in items}
    unknown = [q for q in preds if q not in gt_ids]
    if unknown:
        log.warning("%d of %d prediction qa_ids are not in the GT and are ignored, e.g. %s",
                    len(unknown), len(preds), ", ".join(repr(q) for q in unknown[:N_EXAMPLES]))
    if n_dupes:
        log.warning("%d predictions repeat an earlier qa_id; the last line of each is scored", n_dupes)
    unconvertible: list[tuple[str, str, str]] = []
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        from tqdm import tqdm

        iterator: Iterable[QAItem] = tqdm(items, desc="scoring", unit="QA", disable=len(items) < 2000)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        iterator = items
    prepared: list[tuple[QAItem, Prediction | None, Answer | None, Answer | None, tuple[str, ...]]] = []
    for item in iterator:
        pred = preds.get(item.qa_id)
        lenient: Answer | None = None
        strict: Answer | None = None
        issues: tuple[str, ...] = ()
        if pred is None:
            counts["missing"] += 1
        else:
            lp = parse_answer(pred.text)
            sp = parse_answer(pred.text, strict=True)
            lenient, strict, issues = lp.answer, _strict_answer(sp), lp.issues
            if needs_original_size(pred.coord_space) and (
                has_boxes(lenient) or (strict is not None and has_boxes(strict))
            ):
                wh = pred.extra.get("original_wh") or (video_sizes or {}).get(item.video)
                if wh is None:
                    counts["coord_unconvertible"] += 1
                    unconvertible.append((item.qa_id, item.video, pred.coord_space.value))
                    log.debug("%s: boxes in %s space but the original frame size is unknown; boxes dropped",
                              item.qa_id, pred.coord_space.value)
                    lenient = Answer(lenient.objects, lenient.spans)
                    strict = None if strict is None else Answer(strict.objects, strict.spans)
                else:
                    counts["coord_converted"] += 1
                    kw = {"original_wh": wh, "input_wh": pred.input_wh}
                    try:
                        lenient = convert_answer(lenient, pred.coord_space, **kw)
                        strict = None if strict is None else convert_answer(strict, pred.coord_space, **kw)
                    except ValueError as exc:  # a Prediction built in code (files are checked when read)
                        raise ValueError(f"prediction {pred.qa_id!r} (video {item.video!r}): {exc}") from exc
        prepared.append((item, pred, lenient, strict, issues))
    if unconvertible:
        qa_id, video, _ = unconvertible[0]
        log.warning("%d predictions have boxes in %s space but the original frame size of their video is "
                    "unknown (e.g. %s, video %s): their boxes were dropped and score 0. Fix: pass --video-sizes "
                    "JSON {video: [width, height]} or write original_wh [width, height] in each prediction record",
                    len(unconvertible), "/".join(sorted({u[2] for u in unconvertible})), qa_id, video)
    t_parsed = time.perf_counter()
    names: set[str] = set()
    for item, _, lenient, _, _ in prepared:
        names.update(item.answer.objects)
        names.update(t.name for t in item.answer.tracks)
        if lenient is not None:
            names.update(lenient.objects)
            names.update(t.name for t in lenient.tracks)
    similarity.warm(names)
    t_warm = time.perf_counter()
    lenient_scores = score_split(protocol, items, [None if p[2] is None else _Parsed(p[2]) for p in prepared],
                                 similarity)
    strict_scores = score_split(protocol, items, [None if p[3] is None else _Parsed(p[3]) for p in prepared],
                                similarity)
    for (item, pred, _, _, issues), ls, ss in zip(prepared, lenient_scores, strict_scores, strict=True):
        rows.append(
            {
                "qa_id": item.qa_id,
                "video": item.video,
                "kind": item.kind,
                "duration_s": item.duration_s,
                "length": length_bucket(item.duration_s),
                "category": category_of(item, unav_records),
                "missing": pred is None,
                "coord_space": None if pred is None else pred.coord_space.value,
                "parse_issues": list(issues),
                "lenient": ls.as_dict(),
                "strict": ss.as_dict(),
            }
        )
    elapsed = time.perf_counter() - t0
    n = len(items)

    def rate(scores: Sequence[QAScore]) -> float | None:
        return round(100.0 * sum(s.parsed for s in scores) / len(scores), 6) if scores else None

    def group(key: str, value: str, scores: Sequence[QAScore]) -> list[QAScore]:
        return [s for r, s in zip(rows, scores, strict=True) if r[key] == value]

    breakdowns: dict[str, Any] = {"kind": {}, "length": {}, "category": {}}
    for kind in KINDS:
        sel = group("kind", kind, lenient_scores)
        breakdowns["kind"][kind] = {"n": len(sel), "parse_rate": rate(sel), "tasks": aggregate(sel)}
    for name, _, _ in LENGTH_BUCKETS:
        sel = group("length", name, lenient_scores)
        breakdowns["length"][name] = {"n": len(sel), "parse_rate": rate(sel), "tasks": aggregate(sel)}
    for cat in sorted({r["category"] for r in rows if r["category"]}):
        sel = group("category", cat, lenient_scores)
        breakdowns["category"][cat] = {"n": len(sel), "parse_rate": rate(sel), "tasks": aggregate(sel)}
    metrics: dict[str, Any] = {
        "protocol": protocol,
        "similarity": getattr(similarity, "name", type(similarity).__name__),
        "tau": getattr(similarity, "tau", None),
        "n_qas": n,
        "n_predictions": 0 if predictions is None else len(predictions),
        "n_missing": counts["missing"],
        "n_unknown_qa_ids": len(unknown),
        "unknown_qa_id_examples": unknown[:N_EXAMPLES],
        "n_duplicate_predictions": n_dupes,
        "n_bad_prediction_lines": len(bad_prediction_lines),
        "bad_prediction_lines": list(bad_prediction_lines[:20]),
        "n_gt_zero_length_skipped": n_gt_zero_length_skipped,
        "n_coord_converted": counts["coord_converted"],
        "n_coord_unconvertible": counts["coord_unconvertible"],
        "coord_unconvertible_examples": [u[0] for u in unconvertible[:N_EXAMPLES]],
        "parse_rate": rate(lenient_scores),
        "parse_rate_strict": rate(strict_scores),
        "tasks": aggregate(lenient_scores),
        "strict": {"parse_rate": rate(strict_scores), "tasks": aggregate(strict_scores)},
        "breakdowns": breakdowns,
        "seconds": {
            "parse": round(t_parsed - t0, 4),
            "similarity_warm": round(t_warm - t_parsed, 4),
            "score": round(elapsed - (t_warm - t0), 4),
        },
    }
    return EvalResult(metrics=metrics, rows=rows)


# ---------------------------------------------------------------------------------------------
# tables


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))
    out = [title, line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)


_T2 = ["object_acc", "m_vIoU", "AP@0.3", "AP@0.5"]
_T2ST = ["m_tIoU", "R1@0.3", "R1@0.5", "R1@0.7", "m_vIoU", "AP@0.3", "AP@0.5"]
_T3 = ["m_tIoU", "R1@0.3", "R1@0.5", "R1@0.7"]


def _t2_row(label: str, tasks: Mapping[str, Any]) -> list[str]:
    sp, st = tasks["spatial"], tasks["spatiotemporal"]
    return (
        [label]
        + [_f(sp[k]) for k in _T2]
        + [f"{sp['n']}/{sp['n_excluded']}/{sp['n_unparsed']}"]
        + [_f(st[k]) for k in _T2ST]
        + [f"{st['n']}/{st['n_excluded']}/{st['n_unparsed']}"]
    )


def _ci(v: Any) -> str:
    return "-" if not v else f"{v[0]:.1f}-{v[1]:.1f}"


def _t2_ci_row(label: str, ci: Mapping[str, Any]) -> list[str]:
    sp, st = ci["spatial"], ci["spatiotemporal"]
    return [label] + [_ci(sp.get(k)) for k in _T2] + [""] + [_ci(st.get(k)) for k in _T2ST] + [""]


def _t3_ci_row(label: str, ci: Mapping[str, Any]) -> list[str]:
    return [label] + [_ci(ci["temporal"].get(k)) for k in _T3] + [""]


def _tube_table(metrics: Mapping[str, Any]) -> str:
    """Tube vIoU (VidSTG / HC-STVG), beside the paper's columns."""
    keys = ["m_tube_vIoU", "tube_vIoU@0.3", "tube_vIoU@0.5"]
    head = ["", "S m_tube_vIoU", "@0.3", "@0.5", "ST m_tube_vIoU", "@0.3", "@0.5"]
    rows = []
    for label, tasks in (("lenient", metrics["tasks"]), ("strict", metrics["strict"]["tasks"])):
        rows.append([label] + [_f(tasks[t].get(k)) for t in ("spatial", "spatiotemporal") for k in keys])
    ci = metrics.get("ci")
    if ci:
        rows.append(["lenient 95% CI"] + [_ci(ci["tasks"][t].get(k)) for t in ("spatial", "spatiotemporal")
                                          for k in keys])
    return _table("Tube vIoU (VidSTG / HC-STVG definition; boxes at times without a GT box cost), %", head, rows)


def _t3_row(label: str, tasks: Mapping[str, Any]) -> list[str]:
    t = tasks["temporal"]
    return [label] + [_f(t[k]) for k in _T3] + [f"{t['n']}/{t['n_unparsed']}"]


def _notices(metrics: Mapping[str, Any]) -> list[str]:
    """One line per thing that makes the figures less than they seem (empty when all is well)."""
    out = []
    n_unknown = metrics.get("n_unknown_qa_ids", 0)
    if n_unknown:
        ex = ", ".join(metrics.get("unknown_qa_id_examples", []))
        out.append(f"WARNING: {n_unknown} of {metrics['n_predictions']} predictions have a qa_id not in the GT "
                   f"(ignored), e.g. {ex}")
    if metrics.get("n_bad_prediction_lines", 0):
        lines = ", ".join(str(n) for n in metrics.get("bad_prediction_lines", []))
        out.append(f"WARNING: {metrics['n_bad_prediction_lines']} unreadable prediction line(s) skipped "
                   f"(line {lines})")
    if metrics.get("n_duplicate_predictions", 0):
        out.append(f"note: {metrics['n_duplicate_predictions']} repeated qa_id(s); the last line of each was scored")
    if metrics.get("n_coord_unconvertible", 0):
        ex = ", ".join(metrics.get("coord_unconvertible_examples", []))
        out.append(f"WARNING: boxes of {metrics['n_coord_unconvertible']} predictions dropped: not in original "
                   f"pixels and the frame size is unknown (e.g. {ex}; use --video-sizes or original_wh)")
    if metrics.get("n_gt_zero_length_skipped", 0):
        out.append(f"note: {metrics['n_gt_zero_length_skipped']} zero-length GT event(s) left out of the QAs")
    return out


def format_tables(metrics: Mapping[str, Any]) -> str:
    """Plain-text tables laid out like the paper's Tables 2 and 3, plus the breakdowns."""
    head2 = ["", "ObjAcc", "m_vIoU", "AP@0.3", "AP@0.5", "n/excl/unp",
             "ST m_tIoU", "R1@0.3", "R1@0.5", "R1@0.7", "m_vIoU", "AP@0.3", "AP@0.5", "n/excl/unp"]
    head3 = ["", "m_tIoU", "R1@0.3", "R1@0.5", "R1@0.7", "n/unparsed"]
    lenient, strict = metrics["tasks"], metrics["strict"]["tasks"]
    rows2 = [_t2_row("lenient", lenient), _t2_row("strict", strict)]
    rows3 = [_t3_row("lenient", lenient), _t3_row("strict", strict)]
    ci = metrics.get("ci")
    if ci:
        rows2.insert(1, _t2_ci_row("lenient 95% CI", ci["tasks"]))
        rows3.insert(1, _t3_ci_row("lenient 95% CI", ci["tasks"]))
        rows2.append(_t2_ci_row("strict 95% CI", ci["strict"]["tasks"]))
        rows3.append(_t3_ci_row("strict 95% CI", ci["strict"]["tasks"]))
    sel = metrics.get("selection")
    parts = [
        f"protocol {metrics['protocol']}, similarity {metrics['similarity']} (tau {metrics['tau']}), "
        f"{metrics['n_qas']} QAs, {metrics['n_missing']} without prediction, parse rate "
        f"{_f(metrics['parse_rate'])}% lenient / {_f(metrics['parse_rate_strict'])}% strict",
        *_notices(metrics),
        *([f"selection: tasks {','.join(sel['tasks']) if sel['tasks'] else 'all'}, subset {sel['subset']}"
           f"{'' if sel['seed'] is None else ' (seed ' + str(sel['seed']) + ')'}: {sel['n_qas']} of "
           f"{sel['n_qas_in_gt']} QAs"] if sel else []),
        *([f"95% confidence intervals: bootstrap over videos, {ci['n_bootstrap']} replicates, seed {ci['seed']}"]
          if ci else []),
        "",
        _table("Table 2 - audio-visual spatial (left) and spatio-temporal (right) reasoning, %", head2, rows2),
        "",
        _table("Table 3 - audio-visual temporal reasoning, %", head3, rows3),
        "",
        _tube_table(metrics),
    ]
    bd = metrics["breakdowns"]
    kind_rows = [_t2_row(k, bd["kind"][k]["tasks"])[:6] for k in ("spatial-sounding", "spatial-silent")]
    parts += ["", _table("Spatial, sounding vs silent objects (lenient), %", head2[:6], kind_rows)]
    parts += ["", _table("By video length (lenient) - Table 2 columns, %", head2,
                         [_t2_row(k, v["tasks"]) for k, v in bd["length"].items()])]
    parts += ["", _table("By video length (lenient) - Table 3 columns, %", head3,
                         [_t3_row(k, v["tasks"]) for k, v in bd["length"].items()])]
    if bd["category"]:
        rows = []
        for cat, v in bd["category"].items():
            t = v["tasks"]
            rows.append([cat, str(v["n"]), _f(t["temporal"]["m_tIoU"]), _f(t["spatial"]["object_acc"]),
                         _f(t["spatial"]["m_vIoU"]), _f(t["spatiotemporal"]["m_tIoU"]),
                         _f(t["spatiotemporal"]["m_vIoU"])])
        parts += ["", _table("By UnAV-100 event category (lenient), %",
                             ["category", "n", "T m_tIoU", "S ObjAcc", "S m_vIoU", "ST m_tIoU", "ST m_vIoU"], rows)]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# outputs

_CSV_FIELDS = ["t_iou", "object_acc", "object_precision", "object_f1", "v_iou", "spatial_excluded", "n_frames", "parsed",
               "tube_v_iou"]


def write_outputs(result: EvalResult, out_dir: Path) -> dict[str, Path]:
    """Write ``metrics.json``, ``per_qa.jsonl`` and ``per_qa.csv`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out_dir / "metrics.json", "per_qa": out_dir / "per_qa.jsonl", "csv": out_dir / "per_qa.csv"}
    paths["metrics"].write_text(json.dumps(result.metrics, indent=2) + "\n")
    write_jsonl_atomic(paths["per_qa"], result.rows)
    with paths["csv"].open("w", newline="") as fh:
        import csv

        w = csv.writer(fh)
        header = ["qa_id", "video", "kind", "duration_s", "length", "category", "missing", "coord_space"]
        header += [f"{mode}_{k}" for mode in ("lenient", "strict") for k in _CSV_FIELDS]
        header += [f"{mode}_AP@{t}" for mode in ("lenient", "strict") for t in (0.3, 0.5)]
        w.writerow(header)
        for row in result.rows:
            vals = [row[k] for k in header[:8]]
            for mode in ("lenient", "strict"):
                vals += [row[mode][k] for k in _CSV_FIELDS]
            for mode in ("lenient", "strict"):
                ap = row[mode]["ap"]
                vals += [None if ap is None else ap[f"AP@{t}"] for t in (0.3, 0.5)]
            w.writerow(["" if v is None else v for v in vals])
    return paths


# ---------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, type=Path, help="ground-truth file")
    parser.add_argument("--gt-format", default="official", choices=["official", "ave", "avsbench"],
                        help="format of --gt (default: official R-AVST xml_test_QA.json)")
    parser.add_argument("--pred", required=True,
                        help="predictions JSONL (one {qa_id, text, ...} per line), or 'gt' to score the GT itself")
    parser.add_argument("--protocol", default="ravst", choices=["ravst", "vstar"], help="metric protocol")
    from ravst.similarity import BACKENDS, DEFAULT_BACKEND

    parser.add_argument("--similarity", default=DEFAULT_BACKEND, choices=list(BACKENDS),
                        help=f"object-name similarity backend (default {DEFAULT_BACKEND})")
    parser.add_argument("--word2vec", type=Path, default=None,
                        help="gensim KeyedVectors file for --similarity word2vec (default: the shipped table)")
    parser.add_argument("--tau", type=float, default=None, help="similarity threshold (default: per backend)")
    parser.add_argument("--unav100", type=Path, default=None,
                        help="UnAV-100 annotation JSON: adds a breakdown by event category")
    parser.add_argument("--video-sizes", type=Path, default=None,
                        help='JSON {video: [width, height]} of original frame sizes, for predictions not in original pixels')
    parser.add_argument("--out", type=Path, default=None, help="write metrics.json, per_qa.jsonl and per_qa.csv here")
    parser.add_argument("--split", default=None,
                        help="AVE only (with ave_splits.csv as --gt): keep this split (one of the file's, "
                             "e.g. train, val, test)")
    parser.add_argument("--skip-bad-lines", action="store_true",
                        help="skip (and count) unreadable or invalid prediction lines anywhere in the file "
                             "instead of failing; a truncated LAST line is always skipped and counted")
    parser.add_argument("--on-unknown-keys", default="error", choices=["error", "warn"],
                        help="unknown keys in the official GT / --unav100 JSON: error (default) or warn and "
                             "ignore them")
    parser.add_argument("--masks-dir", type=Path, default=None,
                        help="AVSBench only: root of the ground-truth PNG masks (boxes come from them)")
    parser.add_argument("--quiet", action="store_true", help="do not print the tables")
    from ravst.subsets import add_selection_arguments

    add_selection_arguments(parser)
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="add 95%% confidence intervals from N bootstrap replicates over videos (default 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --subset balanced and --bootstrap (default 0)")


def _on_unknown(args: argparse.Namespace) -> Any:
    return "warn" if getattr(args, "on_unknown_keys", "error") == "warn" else "raise"


def _load_gt(args: argparse.Namespace) -> tuple[list[QAItem], int]:
    """The GT QAs and how many zero-length events were left out (AVE)."""
    path, fmt = Path(args.gt), args.gt_format
    if args.split is not None and fmt != "ave":
        raise ValueError(f"--split applies only to --gt-format ave (with ave_splits.csv); {fmt} GT has no splits")
    if args.masks_dir is not None and fmt != "avsbench":
        raise ValueError(f"--masks-dir applies only to --gt-format avsbench, not {fmt}")
    if fmt == "official":
        from ravst.formats.official import read_official

        return list(read_official(path, on_unknown=_on_unknown(args))), 0
    if fmt == "ave":
        from ravst.formats.ave import ave_to_qa_items, read_ave, read_ave_splits

        if path.suffix == ".csv":
            anns = read_ave_splits(path)
            if args.split is not None:
                known = sorted({a.split for a in anns if a.split is not None})
                if args.split not in known:
                    raise ValueError(f"{path}: --split {args.split!r} is not a split of this file "
                                     f"(it has {', '.join(known) or 'none'})")
                anns = [a for a in anns if a.split == args.split]
        else:
            if args.split is not None:
                raise ValueError(f"{path}: --split needs the AVE splits CSV as --gt (ave_splits.csv); "
                                 "Annotations.txt has no splits")
            anns = read_ave(path)
        return ave_to_qa_items(anns), sum(a.zero_length for a in anns)
    from ravst.formats.avsbench import avsbench_to_qa_items, read_avsbench

    return avsbench_to_qa_items(read_avsbench(path), masks_dir=args.masks_dir), 0


def load_video_sizes(path: Path) -> dict[str, tuple[float, float]]:
    """``--video-sizes``: a JSON object ``{video: [width, height]}`` of original frame sizes in
    pixels. ``FormatError`` naming the file (and line, or the video) for anything else."""
    from ravst.coords import frame_size_wh
    from ravst.formats import FormatError, read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object {{video: [width, height]}}, got {type(data).__name__}")
    sizes = {}
    for video, wh in data.items():
        try:
            sizes[video] = frame_size_wh(f"video {video!r}", wh)
        except ValueError as exc:
            raise FormatError(f"{path}: {exc}") from None
    return sizes


def _check_ids_match(items: Sequence[QAItem], predictions: Sequence[Prediction], pred_path: Path,
                     gt_path: Path) -> None:
    """``NoMatchingPredictionsError`` when no prediction id is a GT id (nothing would be scored)."""
    gt_ids = {it.qa_id for it in items}
    if any(p.qa_id in gt_ids for p in predictions):
        return
    if not predictions:
        raise NoMatchingPredictionsError(f"{pred_path}: no prediction to score (the file has no readable record)")
    pred_ex = ", ".join(repr(p.qa_id) for p in predictions[:3])
    gt_ex = ", ".join(repr(it.qa_id) for it in items[:3]) or "none"
    raise NoMatchingPredictionsError(
        f"{pred_path}: none of its {len(predictions)} prediction qa_ids is in the GT {gt_path} "
        f"({len(items)} QAs): wrong GT file or --gt-format/--split? predictions: {pred_ex}; GT: {gt_ex}")


def _select(items: list[QAItem], args: argparse.Namespace) -> tuple[list[QAItem], dict[str, Any]] | None:
    """The QAs kept by ``--tasks`` / ``--subset`` and a record of the choice (None: all QAs)."""
    tasks = getattr(args, "tasks", None)
    subset = getattr(args, "subset", "all")
    if tasks is None and subset == "all":
        return None
    from ravst.subsets import select

    seed = int(getattr(args, "seed", 0))
    chosen = select(items, tasks=tasks, subset=subset, seed=seed)
    if not chosen:
        raise ValueError(f"{args.gt}: no QA left after --tasks/--subset")
    names = None if tasks is None else [t.value for t in tasks]
    record: dict[str, Any] = {"tasks": names, "subset": subset, "seed": seed if subset != "all" else None,
                              "n_qas_in_gt": len(items), "n_qas": len(chosen)}
    log.info("scoring %d of %d QAs (tasks %s, subset %s)", len(chosen), len(items),
             "all" if names is None else ",".join(names), subset)
    return chosen, record


def add_intervals(result: EvalResult, *, n: int, seed: int) -> None:
    """Add 95 % bootstrap-over-videos intervals of every figure of ``tasks``, ``strict.tasks`` and
    the parse rates to ``result.metrics["ci"]`` (same layout, ``[lo, hi]`` per figure)."""
    from ravst.compare import CI_LEVEL, bootstrap_figures, nest

    block: dict[str, Any] = {"method": "bootstrap over videos, percentile interval", "level": CI_LEVEL,
                             "n_bootstrap": n, "seed": seed}
    for mode, key in (("lenient", "tasks"), ("strict", "strict")):
        _, ci = bootstrap_figures(result.rows, mode, n=n, seed=seed)
        nested = nest(ci)
        rate = nested.pop("parse_rate")
        block[key] = nested if mode == "lenient" else {"parse_rate": rate, "tasks": nested}
        if mode == "lenient":
            block["parse_rate"] = rate
    result.metrics["ci"] = block


def run(args: argparse.Namespace) -> int:
    from ravst.similarity import get_similarity

    try:
        items, n_zero = _load_gt(args)
        all_ids = {it.qa_id for it in items}
        picked = _select(items, args)
        selection: dict[str, Any] | None = None
        predictions = None
        bad_lines: list[int] = []
        if str(args.pred) != "gt":
            from ravst.formats.predictions import load_predictions

            loaded = load_predictions(Path(args.pred), skip_bad_lines=args.skip_bad_lines)
            predictions, bad_lines = loaded.predictions, [b.line for b in loaded.bad_lines]
            _check_ids_match(items, predictions, Path(args.pred), Path(args.gt))
        if picked is not None:
            items, selection = picked
            kept = {it.qa_id for it in items}
            if predictions is not None:
                outside = [p for p in predictions if p.qa_id in all_ids and p.qa_id not in kept]
                predictions = [p for p in predictions if p.qa_id in kept or p.qa_id not in all_ids]
                selection["n_predictions_outside"] = len(outside)
        similarity = get_similarity(args.similarity, tau=args.tau, word2vec_path=args.word2vec)
        unav = None
        if args.unav100 is not None:
            from ravst.formats.unav100 import read_unav100

            unav = {r.video_id: r for r in read_unav100(args.unav100, on_unknown=_on_unknown(args))}
        sizes = None
        if args.video_sizes is not None:
            sizes = load_video_sizes(args.video_sizes)
        result = evaluate(items, predictions, protocol=args.protocol, similarity=similarity,
                          unav_records=unav, video_sizes=sizes, bad_prediction_lines=bad_lines,
                          n_gt_zero_length_skipped=n_zero)
    except (ValueError, OSError) as exc:
        message = str(exc)
        if "on_unknown='warn'" in message:
            message += " (command line: --on-unknown-keys warn)"
        log.error("%s", message)
        return 1
    result.metrics["gt"] = str(args.gt)
    result.metrics["pred"] = str(args.pred)
    if selection is not None:
        result.metrics["selection"] = selection
    if getattr(args, "bootstrap", 0):
        try:
            add_intervals(result, n=args.bootstrap, seed=args.seed)
        except ValueError as exc:
            log.error("%s", exc)
            return 1
    result.metrics["similarity_report"] = similarity.report()
    if not args.quiet:
        sys.stdout.write(format_tables(result.metrics))
    if args.out is not None:
        paths = write_outputs(result, args.out)
        log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0

