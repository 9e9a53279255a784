"""The HTML report: one self-contained page (CSS inline, figures as base64 PNG, no script).

Every piece of text that comes from a file (model names, questions, answers, categories, paths)
goes through :func:`html.escape`. Every artefact carries a line saying what produced it.

>>> table(["a", "b"], [["<x>", "1.00"]], groups=[("", 1), ("G", 1)]).count("<th")
4
>>> "&lt;x&gt;" in table(["a", "b"], [["<x>", "1.00"]])
True
>>> esc("a" + chr(6) + "<b>") == "a" + chr(0xFFFD) + "&lt;b&gt;"
True
"""

from __future__ import annotations

import base64
import html
import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ravst.report import plots
from ravst.report.data import EvalRun, dataset_records
from ravst.types import Answer, QAItem, Track

__all__ = ["ReportOptions", "build_report", "img", "table"]

log = logging.getLogger(__name__)

T2_SPATIAL = (("object_acc", "Object Accuracy"), ("m_vIoU", "m_vIoU"), ("AP@0.3", "AP@0.3"), ("AP@0.5", "AP@0.5"))
T2_ST = (("m_tIoU", "m_tIoU"), ("R1@0.3", "R1@0.3"), ("R1@0.5", "R1@0.5"), ("R1@0.7", "R1@0.7"),
         ("m_vIoU", "m_vIoU"), ("AP@0.3", "AP@0.3"), ("AP@0.5", "AP@0.5"))
T3 = (("m_tIoU", "m_tIoU"), ("R1@0.3", "R1@0.3"), ("R1@0.5", "R1@0.5"), ("R1@0.7", "R1@0.7"))
TUBE = (("m_tube_vIoU", "m_tube_vIoU"), ("tube_vIoU@0.3", "tube_vIoU@0.3"), ("tube_vIoU@0.5", "tube_vIoU@0.5"))
MATCH_TOL_S = 0.5  # a predicted box time serves a frame within this many seconds (metric protocol)

CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
.best{font-weight:bold}.src{color:#666;font-size:.85em;margin:2px 0 10px}
figure{margin:10px 0}img{max-width:100%}figcaption{font-size:.85em;color:#333}
pre{background:#f7f7f7;padding:6px;font-size:.8em;white-space:pre-wrap;max-height:160px;overflow:auto}
.legend span{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
"""


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(text: object) -> str:
    """HTML-escaped text; control characters (which random models emit) become U+FFFD."""
    return html.escape(_CONTROL.sub("\ufffd", str(text)), quote=True)


def img(png: bytes, alt: str, caption: str | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'


def source(text: str) -> str:
    return f'<p class="src">Produced by: {esc(text)}</p>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, groups: Sequence[tuple[str, int]] = (),
          best: Sequence[set[int]] = ()) -> str:
    """An HTML table; ``groups`` is an optional first header row of (label, colspan);
    ``best[i]`` the column indexes to bold in row ``i``."""
    out = ["<table>"]
    if groups:
        out.append("<tr>" + "".join(f'<th colspan="{n}">{esc(g)}</th>' for g, n in groups) + "</tr>")
    out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for i, row in enumerate(rows):
        bold = best[i] if i < len(best) else set()
        cells = "".join(
            f'<td class="best">{esc(c)}</td>' if j in bold else f"<td>{esc(c)}</td>" for j, c in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "".join(out)


def _f(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2f}"


def _best_cells(values: list[list[float | None]]) -> list[set[int]]:
    """Per row, the columns (offset by 1 for the name column) holding the column maximum."""
    best: list[set[int]] = [set() for _ in values]
    if len(values) < 2:
        return best
    for j in range(len(values[0])):
        col: list[float] = [v for r in values if (v := r[j]) is not None]
        if not col:
            continue
        top = max(col)
        if len(col) == len(values) and min(col) == top:
            continue  # all equal: nothing stands out
        for i, r in enumerate(values):
            if r[j] is not None and r[j] == top:
                best[i].add(j + 1)
    return best


def _tasks(run: EvalRun, strict: bool) -> Mapping[str, Any]:
    return run.metrics["strict"]["tasks"] if strict else run.metrics["tasks"]


def _main_tables(runs: Sequence[EvalRun], strict: bool) -> str:
    label = "strict (official layout only)" if strict else "lenient parsing"
    rows2, vals2, rows3, vals3, counts = [], [], [], [], []
    for run in runs:
        t = _tasks(run, strict)
        sp, st, te = t["spatial"], t["spatiotemporal"], t["temporal"]
        v2 = [sp.get(k) for k, _ in T2_SPATIAL] + [st.get(k) for k, _ in T2_ST]
        v3 = [te.get(k) for k, _ in T3]
        rows2.append([run.name, *(_f(v) for v in v2)])
        rows3.append([run.name, *(_f(v) for v in v3)])
        vals2.append(v2)
        vals3.append(v3)
        pr = run.metrics["strict"]["parse_rate"] if strict else run.metrics.get("parse_rate")
        counts.append([run.name, _f(pr), str(te.get("n")), str(te.get("n_unparsed")), str(sp.get("n")),
                       str(sp.get("n_excluded")), str(sp.get("n_unparsed")), str(st.get("n")),
                       str(st.get("n_excluded")), str(st.get("n_unparsed"))])
    t2 = table(["Method", *(h for _, h in T2_SPATIAL), *(h for _, h in T2_ST)], rows2,
               groups=[("", 1), ("Audio-Visual Spatial Reasoning", 4), ("Audio-Visual Spatio-Temporal Reasoning", 7)],
               best=_best_cells(vals2))
    t3 = table(["Method", *(h for _, h in T3)], rows3, groups=[("", 1), ("Audio-Visual Temporal Reasoning", 4)],
               best=_best_cells(vals3))
    tc = table(["Method", "parse rate %", "n", "unparsed", "n", "excluded", "unparsed", "n", "excluded", "unparsed"],
               counts, groups=[("", 2), ("Temporal", 2), ("Spatial", 3), ("Spatio-temporal", 3)])
    srcs = "; ".join(
        f"{r.name}: {r.path / 'metrics.json'} (protocol {r.metrics.get('protocol')}, similarity "
        f"{r.metrics.get('similarity')}, tau {r.metrics.get('tau')})" for r in runs)
    return (f"<h3>Table 2 layout ({esc(label)}), %</h3>{t2}<h3>Table 3 layout ({esc(label)}), %</h3>{t3}"
            f"{_tube_and_ci(runs, strict, label)}"
            f"<h3>Counts ({esc(label)})</h3>{tc}" + source(f"ravst eval, read from {srcs}"))


def _ci_cell(v: Any) -> str:
    return "-" if not v else f"{float(v[0]):.2f}-{float(v[1]):.2f}"


def _tube_and_ci(runs: Sequence[EvalRun], strict: bool, label: str) -> str:
    """Tube vIoU beside the paper's columns and, for runs evaluated with --bootstrap, the 95 %
    intervals of every Table 2 / 3 / tube figure."""
    out = []
    rows, vals = [], []
    for run in runs:
        t = _tasks(run, strict)
        v = [t["spatial"].get(k) for k, _ in TUBE] + [t["spatiotemporal"].get(k) for k, _ in TUBE]
        rows.append([run.name, *(_f(x) for x in v)])
        vals.append(v)
    if any(x is not None for v in vals for x in v):
        out.append(f"<h3>Tube vIoU, VidSTG / HC-STVG definition ({esc(label)}), %</h3>")
        out.append(table(["Method", *(h for _, h in TUBE), *(h for _, h in TUBE)], rows,
                         groups=[("", 1), ("Spatial", 3), ("Spatio-temporal", 3)], best=_best_cells(vals)))
    ci_rows = []
    for run in runs:
        ci = run.metrics.get("ci")
        if not ci:
            continue
        block = ci["strict"]["tasks"] if strict else ci["tasks"]
        cells = [block["spatial"].get(k) for k, _ in T2_SPATIAL] + [block["spatiotemporal"].get(k) for k, _ in T2_ST]
        cells += [block["temporal"].get(k) for k, _ in T3]
        cells += [block["spatial"].get(k) for k, _ in TUBE] + [block["spatiotemporal"].get(k) for k, _ in TUBE]
        ci_rows.append([f"{run.name} (x{ci['n_bootstrap']}, seed {ci['seed']})", *(_ci_cell(c) for c in cells)])
    if ci_rows:
        head = [h for _, h in T2_SPATIAL] + [h for _, h in T2_ST] + [h for _, h in T3] + [h for _, h in TUBE] * 2
        out.append(f"<h3>95 % confidence intervals, bootstrap over videos ({esc(label)}), %</h3>")
        out.append(table(["Method", *head], ci_rows, groups=[
            ("", 1), ("Spatial", 4), ("Spatio-temporal", 7), ("Temporal", 4), ("Tube S", 3), ("Tube ST", 3)]))
    return "".join(out)


def _bd(run: EvalRun, axis: str, group: str, task: str, key: str) -> float | None:
    try:
        v = run.metrics["breakdowns"][axis][group]["tasks"][task][key]
    except (KeyError, TypeError):
        return None
    return None if v is None else float(v)


def _breakdowns(runs: Sequence[EvalRun]) -> str:
    if not all("breakdowns" in r.metrics for r in runs):
        return "<p>No breakdowns in these metrics.json files.</p>"
    parts = []
    src = source("ravst.report.plots (matplotlib, Agg) from the 'breakdowns' block of each metrics.json")
    kinds = [("spatial-sounding", "spatial"), ("spatial-silent", "spatial"), ("spatiotemporal", "spatiotemporal")]
    rows = []
    for r in runs:
        row = [r.name]
        for kind, task in kinds:
            n = (r.metrics["breakdowns"].get("kind", {}).get(kind) or {}).get("n")
            row += [str(n), _f(_bd(r, "kind", kind, task, "object_acc")) if task == "spatial" else "-",
                    _f(_bd(r, "kind", kind, task, "m_vIoU")), _f(_bd(r, "kind", kind, task, "AP@0.5"))]
        rows.append(row)
    parts.append(table(["Method"] + ["n", "Obj Acc", "m_vIoU", "AP@0.5"] * 3, rows,
                       groups=[("", 1), ("Spatial, sounding objects", 4), ("Spatial, silent objects", 4),
                               ("Spatio-temporal", 4)]))
    for key, label in (("m_vIoU", "m_vIoU"), ("object_acc", "Object accuracy")):
        groups = [k for k, t in kinds if key != "object_acc" or t == "spatial"]
        series = {r.name: [_bd(r, "kind", k, t, key) for k, t in kinds if k in groups] for r in runs}
        parts.append(img(plots.bars(f"{label} by QA kind (sounding vs silent)", groups, series), f"{label} by kind"))
    lengths = ["short", "medium", "long"]
    for task, key, label in (("temporal", "m_tIoU", "Temporal m_tIoU"), ("spatial", "m_vIoU", "Spatial m_vIoU"),
                             ("spatiotemporal", "m_vIoU", "Spatio-temporal m_vIoU")):
        series = {r.name: [_bd(r, "length", g, task, key) for g in lengths] for r in runs}
        parts.append(img(plots.bars(f"{label} by video length (0-20 / 20-40 / 40-60 s)", lengths, series),
                         f"{label} by length"))
    cats: dict[str, int] = {}
    for r in runs:
        for c, v in r.metrics["breakdowns"].get("category", {}).items():
            cats[c] = max(cats.get(c, 0), int(v.get("n", 0)))
    top = sorted(cats, key=lambda c: (-cats[c], c))[:15]
    if top:
        for task, key, label in (("temporal", "m_tIoU", "Temporal m_tIoU"), ("spatial", "m_vIoU", "Spatial m_vIoU")):
            series = {r.name: [_bd(r, "category", c, task, key) for c in top] for r in runs}
            parts.append(img(plots.bars(f"{label} by event category ({len(top)} most frequent)", top, series),
                             f"{label} by category"))
    return "".join(parts) + src


def _dataset(items: Sequence[QAItem], qa_path: Path | None, runs: Sequence[EvalRun]) -> str:
    from ravst.pipeline.qa import read_sidecar
    from ravst.pipeline.stats import table1_counts

    cats = {r["qa_id"]: r.get("category") for run in runs for r in run.rows if r.get("category")}
    meta = (read_sidecar(qa_path) if qa_path is not None else None) or {}
    labels = {m["qa_id"]: m["labels"] for m in meta.get("qas", []) if m.get("labels")}
    records = dataset_records(items, cats, labels)
    figs, backend = plots.dataset_figures(records)
    counts = table1_counts(records, items)  # the counter of the build's stats.json ("qa_set")
    unknown = sum(1 for r in records for e in r["events"] if not e["labels"])
    categories = str(counts["categories"]) + (f" ({unknown} event{'s' if unknown != 1 else ''} without one)"
                                              if unknown else "")
    kinds = counts["qas_per_kind"]
    summary = table(["videos", "categories", "avg length (s)", "objects / video", "events", "QAs", *sorted(kinds)],
                    [[str(counts["videos"]), categories, f"{counts['avg_video_s']:.1f}",
                      f"{counts['avg_objects_per_video']:.2f}", str(counts["events"]), str(counts["qas"]),
                      *(str(kinds[k]) for k in sorted(kinds))]])
    body = "".join(img(png, name, name.replace("_", " ")) for name, png in figs)
    how = (f"{backend}, from the QAs in {qa_path} (counted by ravst.pipeline.stats.table1_counts, as the "
           "build's stats.json 'qa_set')"
           + ("; event categories from the QA file's build sidecar" if labels else "")
           + ("; event categories from per_qa.jsonl" if cats and not labels else "")
           + ("" if labels or cats else "; no event categories (give `ravst eval --unav100`, or a build's QA file "
                                        "with its .meta.json sidecar)"))
    return summary + body + source(how)


def _boxes_at(track_list: Sequence[Track], t: float) -> list[list[float]]:
    out: list[list[float]] = []
    for tr in track_list:
        if len(tr) == 0:
            continue
        d = np.abs(tr.times_s - t)
        best = float(d.min())
        if best <= MATCH_TOL_S:
            out.extend(tr.xyxy[d == best].tolist())
    return out


def _pred_answer(run: EvalRun, item: QAItem, wh: tuple[int, int]) -> Answer | None:
    if run.pred_is_gt:
        return item.answer
    pred = run.predictions.get(item.qa_id)
    if pred is None:
        return None
    from ravst.coords import convert_answer, needs_original_size
    from ravst.parsing import parse_answer

    answer = parse_answer(pred.text).answer
    if needs_original_size(pred.coord_space):
        try:
            answer = convert_answer(answer, pred.coord_space, original_wh=wh, input_wh=pred.input_wh)
        except ValueError as exc:
            log.warning("%s: cannot convert boxes (%s)", item.qa_id, exc)
            return Answer(answer.objects, answer.spans)
    return answer


def _score(run: EvalRun, qa_id: str, key: str) -> float | None:
    """A lenient per-QA score of ``run`` (``v_iou``, ``t_iou``...), None when absent."""
    row = run.row(qa_id)
    v = None if row is None else (row.get("lenient") or {}).get(key)
    return None if v is None else float(v)


def _answer_text(answer: Answer | None) -> str:
    if answer is None:
        return "(no prediction)"
    parts = [", ".join(answer.objects) or "(no object)"]
    parts += [f"[{s.start_s:.1f}, {s.end_s:.1f}]" for s in answer.spans]
    parts.append(_count(sum(int(t.nonempty.sum()) for t in answer.tracks), "box", "boxes"))
    return "; ".join(parts)


def _count(n: int, one: str, many: str) -> str:
    """``1 box``, ``0 boxes``, ``2 boxes``."""
    return f"{n} {one if n == 1 else many}"


@dataclass(frozen=True)
class ReportOptions:
    samples: int = 6  # qualitative spatial samples (half of them the worst)
    seed: int = 0
    title: str = "ravst evaluation report"


def _samples(runs: Sequence[EvalRun], items: Sequence[QAItem], videos: Path | None, opts: ReportOptions) -> str:
    """Frames with boxes (when ``videos`` is given) and timelines of the worst temporal QAs."""
    from ravst.infer import resolve_video
    from ravst.media.video import MediaError, read_frames_at

    drawn = [r for r in runs if not r.pred_is_gt]  # GT fed back would only hide the GT boxes
    colour = {r.name: plots.MODEL_COLOURS[i % len(plots.MODEL_COLOURS)] for i, r in enumerate(runs)}

    paths: dict[str, Path | None] = {}
    for it in items:
        if it.video not in paths:
            try:
                paths[it.video] = None if videos is None else resolve_video(videos, it.video)
            except ValueError:
                paths[it.video] = None
    missing = sum(p is None for p in paths.values())
    spatial = [it for it in items
               if paths[it.video] is not None and it.answer.tracks and any(len(t) for t in it.answer.tracks)]
    ranked = drawn or list(runs)

    def mean_v(qa_id: str) -> float | None:
        vals = [v for r in ranked if (v := _score(r, qa_id, "v_iou")) is not None]
        return sum(vals) / len(vals) if vals else None

    scored = [(v, it) for it in spatial if (v := mean_v(it.qa_id)) is not None]
    scored.sort(key=lambda p: (p[0], p[1].qa_id))
    n_worst = (opts.samples + 1) // 2
    worst = {it.qa_id for _, it in scored[:n_worst]}
    chosen = [it for _, it in scored[:n_worst]]
    rest = [it for it in spatial if it.qa_id not in worst]
    random.Random(opts.seed).shuffle(rest)
    chosen += rest[: max(0, opts.samples - len(chosen))]
    legend = (f'<p class="legend">Boxes:<span style="background:{plots.GT_COLOUR}"></span>ground truth (solid)'
              + "".join(f'<span style="background:{colour[r.name]}"></span>{esc(r.name)} (dashed)' for r in drawn)
              + "</p>")
    if len(drawn) < len(runs):
        legend += "<p>Runs that feed the ground truth back are not drawn (their boxes are the green ones).</p>"
    parts = [legend] if videos is not None else ["<p>No --videos folder given: no frames drawn.</p>"]
    if missing and videos is not None:
        parts.append(f"<p>{missing} of {_count(len(paths), 'video', 'videos')} {'is' if missing == 1 else 'are'} "
                     f"not in {esc(videos)}; their QAs are not drawn.</p>")
    for item in chosen:
        times = sorted({float(t) for tr in item.answer.tracks for t, ok in zip(tr.times_s, tr.nonempty, strict=True)
                        if ok})
        if len(times) > 4:
            times = [times[round(i)] for i in np.linspace(0, len(times) - 1, 4)]
        path = paths[item.video]
        assert path is not None
        try:
            frames, real = read_frames_at(path, times)
        except MediaError as exc:
            parts.append(f"<p>{esc(item.qa_id)}: video not readable ({esc(exc)})</p>")
            continue
        wh = (int(frames.shape[2]), int(frames.shape[1]))
        gt = [_boxes_at(item.answer.tracks, t) for t in times]
        answers = {r.name: _pred_answer(r, item, wh) for r in runs}
        preds = {r.name: [_boxes_at(a.tracks if (a := answers[r.name]) else (), t) for t in times] for r in drawn}
        tag = "worst: lowest mean vIoU" if item.qa_id in worst else "random sample"
        png = plots.frames_with_boxes(frames, list(real), gt, preds, f"{item.qa_id} ({tag})",
                                      colours=[colour[r.name] for r in drawn])
        lines = [f"Q: {item.question}", f"GT: {_answer_text(item.answer)}"]
        for r in runs:
            lines.append(f"{r.name}: {_answer_text(answers[r.name])}; vIoU "
                         f"{_f(None if (v := _score(r, item.qa_id, 'v_iou')) is None else 100 * v)}")
        parts.append(img(png, item.qa_id) + "<pre>" + esc("\n".join(lines)) + "</pre>")
    temporal = [it for it in items if it.answer.span is not None]

    def mean_t(qa_id: str) -> float | None:
        vals = [v for r in ranked if (v := _score(r, qa_id, "t_iou")) is not None]
        return sum(vals) / len(vals) if vals else None

    tscored = sorted(((v, it) for it in temporal if (v := mean_t(it.qa_id)) is not None),
                     key=lambda p: (p[0], p[1].qa_id)) if drawn else []
    if tscored:
        parts.append("<h3>Temporal: the QAs with the lowest mean tIoU</h3>")
    for v, item in tscored[:3]:
        span = item.answer.span
        assert span is not None
        preds_t = {}
        for r in drawn:
            a = _pred_answer(r, item, (1, 1))
            preds_t[r.name] = [(s.start_s, s.end_s) for s in (a.spans if a else ())]
        png = plots.timeline((span.start_s, span.end_s), preds_t, item.duration_s,
                             f"{item.qa_id}: mean tIoU {100 * v:.1f}", colours=[colour[r.name] for r in drawn])
        parts.append(img(png, item.qa_id, item.question))
    backends = "; ".join(f"{r.name}: {r.backend}" + (f" ({r.pred_path})" if r.pred_path else "") for r in runs)
    parts.append(source(f"frames decoded by ravst.media.video.read_frames_at (PyAV) from {videos or '-'}; GT boxes "
                        f"from the QA file; predicted boxes parsed by ravst.parsing from: {backends}; drawn by "
                        "ravst.report.plots (matplotlib)"))
    return "".join(parts)


def build_report(runs: Sequence[EvalRun], items: Sequence[QAItem] | None = None, *,
                 qa_path: Path | None = None, videos: Path | None = None,
                 options: ReportOptions | None = None, notes: Sequence[str] = ()) -> str:
    """The whole page as a string."""
    opts = options or ReportOptions()
    if not runs:
        raise ValueError("the report needs at least one evaluation folder")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names} (use --name)")
    sections = [f"<h1>{esc(opts.title)}</h1>"]
    sections.append("<h2>Models and provenance</h2><ul>" + "".join(
        f"<li>{esc(r.name)}: folder {esc(r.path)}; predictions: {esc(r.backend)}"
        f"{'' if r.pred_path is None else ' (' + esc(r.pred_path) + ')'}</li>" for r in runs) + "</ul>")
    if notes:
        sections.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    sections.append("<h2>Main results (lenient parsing)</h2>" + _main_tables(runs, strict=False))
    if all("strict" in r.metrics for r in runs):
        sections.append("<h2>Main results (strict parsing)</h2>" + _main_tables(runs, strict=True))
    sections.append("<h2>Breakdowns</h2>" + _breakdowns(runs))
    if items:
        sections.append("<h2>Dataset statistics (Figure 3 style)</h2>" + _dataset(items, qa_path, runs))
        sections.append("<h2>Qualitative results (Figure 5 style)</h2>" + _samples(runs, items, videos, opts))
    body = "\n".join(sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(opts.title)}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")
