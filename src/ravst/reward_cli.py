"""``ravst reward``: the GRPO rewards of completions, exactly as the trainer computes and logs them.

    ravst reward --qa xml_test_QA.json --completions completions.jsonl --mode ravst|official \\
        [--vocab Test_gt_object_vocab.pt] [--word2vec GoogleNews.bin] --out rewards.jsonl

``--completions``: JSONL, one ``{"qa_id": ..., "text": ...}`` per line (a ``ravst infer``
predictions file works). Output: one ``{"qa_id", "format", "object", "temporal", "spatial",
"total"}`` per input line, ``null`` where a component does not apply to the task (or, official
mode, where the released code has no (second, name) pair). Counters (format-gated, released-code
errors, undetermined word vectors) are logged at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "read_completions", "run", "score_file"]

log = logging.getLogger(__name__)

FIELDS = ("format", "object", "temporal", "spatial", "total")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qa", type=Path, required=True, help="QA file in the official layout (xml_test_QA.json)")
    parser.add_argument("--completions", type=Path, required=True, help='JSONL of {"qa_id", "text"}')
    parser.add_argument("--mode", choices=("ravst", "official"), default="ravst",
                        help="ravst (default; content pays only with format 1) or official (the released values)")
    parser.add_argument("--vocab", type=Path, default=None,
                        help="official mode: the GT vocabulary .pt (the released trainer used Train_gt_object_vocab.pt)")
    parser.add_argument("--word2vec", type=Path, default=None,
                        help="official mode: gensim KeyedVectors (GoogleNews-300); default: the shipped table. "
                             "ravst mode: the vectors of --similarity word2vec")
    parser.add_argument("--similarity", choices=("hybrid", "minilm", "word2vec", "exact"), default="hybrid",
                        help="ravst mode: object-name similarity (default hybrid, like the trainer and ravst eval)")
    parser.add_argument("--content-ungated", action="store_true",
                        help="ravst mode: the old rule (content scored on malformed answers too), for comparison")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL")


def read_completions(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, qa_id, text) per non-empty line; ValueError naming the file and line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read completions: {exc}") from exc
    with handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc}") from exc
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: expected an object with qa_id and text")
            qa_id, text = rec.get("qa_id"), rec.get("text")
            if not isinstance(qa_id, str):
                raise ValueError(f"{path}:{n}: field 'qa_id' missing or not a string")
            if not isinstance(text, str):
                raise ValueError(f"{path}:{n}: field 'text' missing or not a string")
            yield n, qa_id, text


def _config(args: argparse.Namespace) -> Any:
    from ravst.rewards import RewardConfig

    if args.mode == "official":
        if args.vocab is None:
            raise ValueError("--mode official needs --vocab (Train_gt_object_vocab.pt or Test_gt_object_vocab.pt)")
        return RewardConfig(mode="official", official_vocab=str(args.vocab),
                            official_word2vec=None if args.word2vec is None else str(args.word2vec))
    return RewardConfig(similarity=args.similarity, word2vec_path=None if args.word2vec is None else str(args.word2vec),
                        content_requires_format=not args.content_ungated)


def score_file(qa_path: Path, completions: Path, config: Any) -> list[dict[str, Any]]:
    """One output record per completion line (the trainer's numbers)."""
    from ravst.formats.official import read_official
    from ravst.rewards import score_completion

    items = {it.qa_id: it for it in read_official(qa_path)}
    out = []
    for n, qa_id, text in read_completions(completions):
        item = items.get(qa_id)
        if item is None:
            raise ValueError(f"{completions}:{n}: qa_id {qa_id!r} is not in {qa_path}")
        scores, _ = score_completion(text, item, config)
        rec: dict[str, Any] = {"qa_id": qa_id}
        for k in FIELDS[:-1]:
            rec[k] = getattr(scores, k)
        rec["total"] = scores.total(config.weights(item.task))
        out.append(rec)
    return out


def run(args: argparse.Namespace) -> int:
    from ravst.rewards import COUNTERS

    before = dict(COUNTERS)
    try:
        config = _config(args)
        records = score_file(args.qa, args.completions, config)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        tmp.replace(args.out)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    counts = {k: v - before.get(k, 0) for k, v in COUNTERS.items() if v - before.get(k, 0)}
    n = len(records)
    mean = {k: sum(r[k] for r in records if r[k] is not None) / max(1, sum(r[k] is not None for r in records))
            for k in FIELDS}
    log.info("%d completions (%s mode) -> %s; means: %s; counts: %s", n, config.mode, args.out,
             ", ".join(f"{k} {v:.4f}" for k, v in mean.items()), counts or "-")
    for key in ("error", "official_raised", "official_w2v_unknown", "coord_unconvertible"):
        if counts.get(key):
            log.warning("%d completion(s) counted as %s (see the log above)", counts[key], key)
    return 0
