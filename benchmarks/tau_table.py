"""Measure object-name similarity on real name pairs and choose a default tau per backend.

Pairs come from real names only:

* ``cooccur`` (different object): two names listed as DIFFERENT objects in the same official
  R-AVST answer (the annotation itself says they are distinct objects);
* ``modifier`` (same object): a GT name and a shorter GT name with the same head noun whose words
  it contains (``"black race car"`` / ``"race car"``), i.e. the answer of a model that drops
  adjectives;
* ``hand`` (same object): synonym / paraphrase pairs of names that both occur in the R-AVST test
  vocabulary or the UnAV-100 labels, labelled by hand below (each is checked to occur).

For each backend it prints the similarity distribution per class and, for a sweep of tau,
precision / recall / F1 / balanced accuracy of "similarity >= tau means same object"; the
default tau is the one with the best balanced accuracy (ties: the higher tau).

Usage::

    python benchmarks/tau_table.py [--qa ../shared/data/r_avst/xml_test_QA.json]
        [--unav100 ../shared/data/unav100/unav100_annotations.json] [--word2vec PATH] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path

import numpy as np

from ravst.similarity import get_similarity, normalize_name

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# (name, name) pairs judged the same object; both names must occur in the real vocabularies.
HAND_SAME = [
    ("Spectators", "Audience"),
    ("Crowd", "Spectators"),
    ("A crowd of people", "Crowd"),
    ("Fighter jet", "Jet fighter"),
    ("Airplane", "Jet fighter"),
    ("Children", "Young children"),
    ("Child", "A young child"),
    ("Baby", "A baby"),
    ("Man", "A young man"),
    ("Woman", "A young woman"),
    ("Person", "A young person"),
    ("People", "A group of people"),
    ("Two men", "Men"),
    ("Car", "Race car"),
    ("Car", "Police car"),
    ("Fire truck", "Emergency vehicle"),
    ("Ambulance", "Emergency vehicle"),
    ("Vehicles", "Cars"),
    ("Firework", "Fireworks"),
    ("electronic organ", "an electronic organ"),
    ("Acoustic guitar", "guitar"),
    ("bass guitar", "guitar"),
    ("Choir", "singing choir"),
    ("Orchestra", "Musicians"),
    ("Sailboat", "sailing"),
    ("Waves", "sea waves"),
    ("Lion", "Lions"),
    ("Dog", "White dog"),
    ("Bull", "Black bull"),
    ("Goats", "Spotted sheep"),
    ("Runners", "People"),
    ("Conductor", "A man"),
    ("Players", "Volleyball players"),
    ("Tap dancers", "tap dancing"),
    ("Lawn mower", "lawn mowing"),
    ("Helicopter", "helicopter"),
    ("Motorcyclist", "Motorcycle"),
    ("Cell phones", "phone"),
]

_PREPOSITIONS = {"in", "with", "of", "on", "at", "from", "wearing", "holding", "playing", "and", "s"}


def head(norm: str) -> str:
    words = norm.split()
    for i, w in enumerate(words):
        if w in _PREPOSITIONS:
            words = words[:i]
            break
    return words[-1] if words else ""


def real_names(qa_path: Path) -> tuple[set[str], list[list[str]]]:
    data = json.loads(qa_path.read_text())
    names: set[str] = set()
    answers: list[list[str]] = []
    for video in data:
        for event in video["annotation"]:
            for key in ("AV Temporal Reasoning", "AV Spatial Reasoning", "AV ST Reasoning"):
                for qa in event.get(key, []):
                    objs = re.findall(r"<object>(.*?)</object>", qa["A"], flags=re.S)
                    names.update(o.strip() for o in objs)
                    answers.append([o.strip() for o in objs])
    return names, answers


def build_pairs(qa_path: Path, unav_path: Path | None) -> list[tuple[str, str, bool, str]]:
    names, answers = real_names(qa_path)
    vocab = {n.lower() for n in names}
    if unav_path is not None and unav_path.exists():
        db = json.loads(unav_path.read_text())["database"]
        vocab |= {a["label"].lower() for v in db.values() for a in v["annotations"]}
    pairs: dict[tuple[str, str], tuple[bool, str]] = {}
    for objs in answers:
        for a, b in itertools.combinations(objs, 2):
            na, nb = normalize_name(a), normalize_name(b)
            if na and nb and na != nb:
                pairs[tuple(sorted((na, nb)))] = (False, "cooccur")  # type: ignore[index]
    norms = sorted({normalize_name(n) for n in names} - {""})
    for a in norms:
        ha = head(a)
        for b in norms:
            if a != b and ha and head(b) == ha and set(b.split()) < set(a.split()):
                key = tuple(sorted((a, b)))
                pairs.setdefault(key, (True, "modifier"))  # type: ignore[arg-type]
    for a, b in HAND_SAME:
        for n in (a, b):
            if n.lower() not in vocab:
                raise ValueError(f"hand pair name {n!r} is not in the real vocabularies")
        na, nb = normalize_name(a), normalize_name(b)
        if na != nb:
            pairs[tuple(sorted((na, nb)))] = (True, "hand")  # type: ignore[index]
    return [(a, b, same, src) for (a, b), (same, src) in sorted(pairs.items())]


def sweep(sims: np.ndarray, same: np.ndarray, taus: np.ndarray) -> list[dict[str, float]]:
    rows = []
    for tau in taus:
        pred = sims >= tau - 1e-12
        tp = int((pred & same).sum())
        fp = int((pred & ~same).sum())
        fn = int((~pred & same).sum())
        tn = int((~pred & ~same).sum())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        tnr = tn / (tn + fp) if tn + fp else 0.0
        rows.append({"tau": float(tau), "precision": prec, "recall": rec, "f1": f1, "bal_acc": (rec + tnr) / 2})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qa", type=Path, default=SHARED / "r_avst" / "xml_test_QA.json")
    ap.add_argument("--unav100", type=Path, default=SHARED / "unav100" / "unav100_annotations.json")
    ap.add_argument("--word2vec", type=Path, default=None, help="gensim KeyedVectors to measure too")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = ap.parse_args()
    pairs = build_pairs(args.qa, args.unav100)
    same = np.array([p[2] for p in pairs])
    lines = [
        f"pairs: {len(pairs)} ({int(same.sum())} same object: "
        f"{sum(1 for p in pairs if p[3] == 'modifier')} modifier + {sum(1 for p in pairs if p[3] == 'hand')} hand; "
        f"{int((~same).sum())} different object: co-occurring in one answer)",
        "",
    ]
    backends = ["exact", "minilm"] + (["word2vec"] if args.word2vec else [])
    taus = np.round(np.arange(0.30, 1.0001, 0.05), 2)
    for name in backends:
        sim = get_similarity(name, word2vec_path=args.word2vec)
        t0 = time.perf_counter()
        vals = np.array([float(sim.matrix([a], [b])[0, 0]) for a, b, _, _ in pairs])
        dt = time.perf_counter() - t0
        rows = sweep(vals, same, taus)
        best = max(rows, key=lambda r: (round(r["bal_acc"], 6), r["tau"]))
        lines += [
            f"### {name} ({dt:.2f} s for {len(pairs)} pairs, cold cache)",
            "",
            f"similarity, same-object pairs: mean {vals[same].mean():.3f}, "
            f"quartiles {np.percentile(vals[same], [25, 50, 75]).round(3).tolist()}; "
            f"different-object pairs: mean {vals[~same].mean():.3f}, "
            f"quartiles {np.percentile(vals[~same], [25, 50, 75]).round(3).tolist()}",
            "",
            "| tau | precision | recall | F1 | balanced acc |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['tau']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['bal_acc']:.3f} |"
            for r in rows
        ]
        lines += ["", f"best balanced accuracy: tau = {best['tau']:.2f}", ""]
        if name == "minilm":
            order = np.argsort(-vals)
            worst_neg = [i for i in order if not same[i]][:8]
            worst_pos = [i for i in order[::-1] if same[i]][:8]
            lines.append("highest different-object pairs: " + "; ".join(
                f"{pairs[i][0]} / {pairs[i][1]} {vals[i]:.2f}" for i in worst_neg))
            lines.append("")
            lines.append("lowest same-object pairs: " + "; ".join(
                f"{pairs[i][0]} / {pairs[i][1]} {vals[i]:.2f}" for i in worst_pos))
            lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
