"""``ravst review``: serve the review app, add reviewers, report kappa, export the curated set.

Sub-commands::

    ravst review serve --data DIR --db reviews.sqlite [--host 127.0.0.1 --port 8000]
    ravst review serve --build BUILD_DIR --videos DIR --db reviews.sqlite [--judge scores.jsonl]
    ravst review add-reviewer NAME --db reviews.sqlite     # prints the new token
    ravst review kappa --db reviews.sqlite [--min-score 3] [--json]
    ravst review export --db reviews.sqlite --min-score 3 --out curated.json
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ravst.review.db import REVIEWS_PER_ITEM, ReviewDB, ReviewDBError
from ravst.review.kappa import build_report
from ravst.types import QAItem

__all__ = ["add_arguments", "curated_items", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="review_command", metavar="ACTION")
    sub.required = True

    serve = sub.add_parser("serve", help="run the review web app")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path,
                        help="data folder: qa.json (official format) and videos/<video_name>.mp4")
    source.add_argument("--build", type=Path,
                        help="build folder of 'ravst build': serves BUILD/qa/r_avst_qa.json (needs --videos)")
    serve.add_argument("--videos", type=Path, default=None,
                       help="with --build: the folder of the build's videos (<video_name>.mp4 ...; symbolic links "
                            "allowed when their real path is inside it or an --allow-root)")
    serve.add_argument("--allow-root", action="append", type=Path, default=[], metavar="DIR",
                       help="another folder the real path of a served video may be in (repeatable)")
    serve.add_argument("--judge", type=Path, default=None,
                       help="a 'ravst judge' output: hand out the lowest judge scores first (after flagged items)")
    serve.add_argument("--db", required=True, type=Path, help="SQLite review database (created if absent)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")

    add = sub.add_parser("add-reviewer", help="create a reviewer and print their token")
    add.add_argument("name", help="reviewer name (unique)")
    add.add_argument("--db", required=True, type=Path, help="SQLite review database (created if absent)")

    kappa = sub.add_parser("kappa", help="quadratic weighted kappa overall and per task, mean scores")
    kappa.add_argument("--db", required=True, type=Path, help="SQLite review database")
    kappa.add_argument("--min-score", type=float, default=None,
                       help="also report the mean score of items whose mean score is >= this")
    kappa.add_argument("--json", action="store_true", help="print JSON instead of a table")

    export = sub.add_parser("export", help="write the curated QAs in the official format")
    export.add_argument("--db", required=True, type=Path, help="SQLite review database")
    export.add_argument("--min-score", required=True, type=float,
                        help="keep items whose mean score (over their reviewers) is >= this")
    export.add_argument("--min-reviews", type=int, default=REVIEWS_PER_ITEM,
                        help=f"keep only items with at least this many scores (default {REVIEWS_PER_ITEM})")
    export.add_argument("--out", required=True, type=Path, help="output JSON file (official format)")


def _existing_db(path: Path) -> ReviewDB:
    if not path.is_file():
        raise ReviewDBError(f"{path}: no such review database")
    return ReviewDB(path)


def curated_items(db: ReviewDB, min_score: float, *, min_reviews: int = REVIEWS_PER_ITEM) -> list[QAItem]:
    """The QAs (from the QA file stored in the database) whose mean score is >= ``min_score``
    among the items with at least ``min_reviews`` scores, in file order."""
    from ravst.formats.official import official_json_to_items

    source = db.source_bytes()
    if source is None:
        raise ReviewDBError(f"{db.path}: no QA file registered yet (run 'ravst review serve' first)")
    items = {item.qa_id: item for item in official_json_to_items(json.loads(source.decode("utf-8")))}
    kept: list[QAItem] = []
    for row, scores in db.scores_by_item():
        if len(scores) >= max(min_reviews, 1) and sum(scores) / len(scores) >= min_score:
            if row.qa_id not in items:
                raise ReviewDBError(f"{db.path}: item {row.qa_id} is not in the stored QA file")
            kept.append(items[row.qa_id])
    return kept


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # like uvicorn: connections in TIME_WAIT (e.g. after a crash) do not block a restart,
        # a server still listening does
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen()
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port)") from exc


def _check_min_score(value: float | None) -> None:
    if value is not None and not 1.0 <= value <= 4.0:
        raise ValueError(f"--min-score {value:g}: scores are 1-4, so it must be in [1, 4]")


def _fast_parts() -> tuple[str, str]:
    """uvicorn's C HTTP parser and event loop (``httptools``, ``uvloop``: the ``review`` extra)
    when installed; otherwise the pure-Python ones, with a WARNING (about 2x slower under load)."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if (http, loop) != ("httptools", "uvloop"):
        log.warning("serving with http=%s loop=%s: install httptools and uvloop (pip install 'ravst[review]') "
                    "for about twice the throughput", http, loop)
    return http, loop


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ravst.review.app import create_app

    if args.build is None and args.videos is not None:
        raise ValueError("--videos goes with --build (a data folder has its own videos/)")
    _check_port_free(args.host, args.port)
    app = create_app(args.data, args.db, build_dir=args.build, videos_dir=args.videos,
                     allow_roots=args.allow_root, judge_scores=args.judge)
    log.info("review app on http://%s:%d (%s %s, db %s)", args.host, args.port,
             "build" if args.build else "data", args.build or args.data, args.db)
    http, loop = _fast_parts()
    # the objects built at start-up (items, payloads, the in-memory state: ~140,000 for 9,828
    # items) live as long as the server: keep them out of the cyclic GC's full collections,
    # which otherwise walk all of them (50-65 ms measured, a pause of the event loop)
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", lifespan="on", http=http, loop=loop)
    return 0


def run(args: argparse.Namespace) -> int:
    action = args.review_command
    try:
        if action == "serve":
            return _serve(args)
        if action == "add-reviewer":
            if not args.db.parent.is_dir():
                raise ReviewDBError(f"{args.db}: folder {args.db.parent} does not exist")
            token = ReviewDB(args.db).add_reviewer(args.name)
            sys.stdout.write(token + "\n")
            log.info("reviewer %r added; give them the token above (it is not stored)", args.name)
            return 0
        if action == "kappa":
            _check_min_score(args.min_score)
            db = _existing_db(args.db)
            report = build_report(
                ((row.task, scores) for row, scores in db.scores_by_item()), min_score=args.min_score
            )
            text = json.dumps(report.to_dict(), indent=2) if args.json else report.to_text()
            sys.stdout.write(text + "\n")
            return 0
        if action == "export":
            from ravst.formats.official import write_official

            _check_min_score(args.min_score)
            if not args.out.parent.is_dir():
                raise ValueError(f"--out {args.out}: folder {args.out.parent} does not exist")
            db = _existing_db(args.db)
            kept = curated_items(db, args.min_score, min_reviews=args.min_reviews)
            write_official(kept, args.out)
            log.info("wrote %d curated QAs (mean score >= %g) to %s", len(kept), args.min_score, args.out)
            return 0
    except ValueError as exc:  # ReviewDBError, FormatError and MediaError are ValueErrors
        log.error("%s", exc)
        return 1
    log.error("unknown review action %r", action)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ravst review`` alone (``python -m ravst.review.cli``)."""
    parser = argparse.ArgumentParser(prog="ravst review")
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
