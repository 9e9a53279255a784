"""The review web app: ``create_app(source, db_path)`` returns a FastAPI application.

Two sources of QAs (docs/review.md): a data folder (``DIR/qa.json`` in the official R-AVST
format and ``DIR/videos/<video_name>.<ext>``, ``load_review_data``) or a build folder
(``BUILD/qa/r_avst_qa.json`` of ``ravst build qa`` and a videos folder, ``load_build_data``).
Flagged items (suspicious ground truth) come first in the queue: a build's flags are read from
the QA file's sidecar ``BUILD/qa/r_avst_qa.meta.json`` that the builder writes (the one source
of truth, ``ravst.pipeline.qa.read_sidecar``); a data folder's from ``DIR/flags.jsonl``.
Every ``/api`` call needs ``Authorization: Bearer <token>``, checked (with ``Content-Length``)
by an ASGI middleware BEFORE any byte of a body is read. The ``<video>`` element cannot send
that header, so the item payload carries a short-lived URL signed for that reviewer
(``/media/<n>?r=..&exp=..&sig=..``); the file behind it comes from an index built at start-up
and its real path is checked again at every request (a file swapped for a symbolic link to
somewhere else after start-up is refused).

This module imports FastAPI inside ``create_app`` (an optional dependency) and deliberately has
no ``from __future__ import annotations``: FastAPI reads the endpoint annotations at run time.
"""

import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from ravst.review.db import REVIEWS_PER_ITEM, ReviewDB, ReviewDBError
from ravst.review.kappa import SCALE_LABELS
from ravst.review.routes import MAX_NOTE_CHARS_API, HotRoutes, dumps, strict_json
from ravst.review.state import ReviewState
from ravst.types import QAItem

__all__ = [
    "BUILD_QA_PATH",
    "BUILD_SIDECAR_PATH",
    "FLAGS_FILENAME",
    "MAX_API_BODY_BYTES",
    "MEDIA_URL_TTL_S",
    "QA_FILENAME",
    "VIDEOS_DIRNAME",
    "VIDEO_EXTENSIONS",
    "ReviewData",
    "create_app",
    "flag_text",
    "item_payload",
    "load_build_data",
    "load_review_data",
    "read_flags",
    "sidecar_flags",
]

log = logging.getLogger(__name__)

QA_FILENAME = "qa.json"
VIDEOS_DIRNAME = "videos"
FLAGS_FILENAME = "flags.jsonl"
"""Optional per-QA flags next to ``qa.json``: one ``{"qa_id": ..., "flags": [{"reason": ...}]}`` a line."""
BUILD_QA_PATH = Path("qa") / "r_avst_qa.json"
"""The QA file of a build folder (written by ``ravst build qa``)."""
BUILD_SIDECAR_PATH = Path("qa") / "r_avst_qa.meta.json"
"""The QA file's sidecar the builder writes (per-QA ``flags``: ``[{"reason", "object", "detail"}]``)."""
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".m4v", ".mov", ".ogv", ".mkv")
"""Looked up in this order for ``videos/<video_name><ext>``; browsers play mp4 (H.264) and webm."""
MEDIA_URL_TTL_S = 6 * 3600.0
MAX_API_BODY_BYTES = 16 * 1024
"""Largest request body accepted on ``/api/*`` (a score is well under 3 kB even with a 2000-character
note); larger bodies get 413 before they are read. Other paths accept no body at all."""
STATIC_DIR = Path(__file__).with_name("static")
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; media-src 'self'; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class ReviewData:
    """The QAs to review, the video file of each video name, the folders a served file's real
    path must stay inside, and the per-QA flag reasons (``{qa_id: (reason, ...)}``)."""

    data_dir: Path
    qa_path: Path
    items: tuple[QAItem, ...]
    source_bytes: bytes
    videos: dict[str, Path]
    allowed_roots: tuple[Path, ...] = ()
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    skipped_videos: tuple[str, ...] = ()
    videos_dir: Path | None = None

    def video_path(self, video: str) -> Path | None:
        return self.videos.get(video)


def inside_roots(path: str | Path, roots: Sequence[Path]) -> Path | None:
    """The real path of ``path`` when it is a regular file inside one of ``roots`` (real paths),
    else None. Called at start-up AND at every media request."""
    try:
        real = Path(os.path.realpath(path))
        if not real.is_file():
            return None
    except (OSError, ValueError):
        return None
    return real if any(real.is_relative_to(root) for root in roots) else None


def _index_videos(folder: Path, roots: Sequence[Path]) -> tuple[dict[str, Path], list[str]]:
    """``{stem: path}`` of the playable files directly inside ``folder`` (the path in the
    folder, possibly a symbolic link), and the names skipped because their real path is not a
    regular file inside ``roots``."""
    found: dict[str, Path] = {}
    skipped: list[str] = []
    if not folder.is_dir():
        log.warning("%s: no such folder; no item can be reviewed", folder)
        return found, skipped
    rank = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}
    for path in sorted(folder.iterdir()):
        ext = path.suffix.lower()
        if ext not in rank:
            continue
        if inside_roots(path, roots) is None:
            log.warning("%s: skipped (its real path %s is not a regular file inside %s)",
                        path, os.path.realpath(path), ", ".join(map(str, roots)))
            skipped.append(path.name)
            continue
        previous = found.get(path.stem)
        if previous is None or rank[ext] < rank[previous.suffix.lower()]:
            found[path.stem] = path
    return found, skipped


def read_flags(path: Path) -> dict[str, tuple[str, ...]]:
    """``{qa_id: (reason, ...)}`` from a flags JSONL file (``{"qa_id": ..., "flags":
    [{"reason": ...}, ...]}`` per line; ``"reason"`` strings, blank lines ignored)."""
    out: dict[str, tuple[str, ...]] = {}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the flags file ({exc.strerror or exc})") from exc
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{path}: line {number}: not a JSON record ({exc})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("qa_id"), str):
            raise ValueError(f"{path}: line {number}: a flags record needs a string 'qa_id'")
        flags = record.get("flags", [])
        if not isinstance(flags, list) or not all(isinstance(f, dict) and isinstance(f.get("reason"), str)
                                                  for f in flags):
            raise ValueError(f"{path}: line {number}: 'flags' must be a list of {{\"reason\": text}}")
        reasons = tuple(f["reason"].strip() for f in flags if f["reason"].strip())
        if reasons:
            out[record["qa_id"]] = out.get(record["qa_id"], ()) + reasons
    return out


def flag_text(flag: Mapping[str, Any]) -> str:
    """What the page shows for one flag of a build's sidecar: ``reason (object): detail``.

    >>> flag_text({"reason": "box_covers_frame", "object": "man", "detail": "at 3 s a box covers 95% of the frame"})
    'box_covers_frame (man): at 3 s a box covers 95% of the frame'
    """
    text = str(flag["reason"]).strip()
    if isinstance(flag.get("object"), str) and flag["object"].strip():
        text += f" ({flag['object'].strip()})"
    if isinstance(flag.get("detail"), str) and flag["detail"].strip():
        text += f": {flag['detail'].strip()}"
    return text


def sidecar_flags(meta: Mapping[str, Any], path: Path) -> dict[str, tuple[str, ...]]:
    """``{qa_id: (reason text, ...)}`` of the flagged QAs of a QA sidecar (``ravst-qa-meta``,
    read with ``ravst.pipeline.qa.read_sidecar``); ValueError naming ``path`` and the entry when
    it is malformed."""
    if meta.get("format") != "ravst-qa-meta":
        raise ValueError(f"{path}: not a QA sidecar (format is {meta.get('format')!r}, expected 'ravst-qa-meta')")
    qas = meta.get("qas")
    if not isinstance(qas, list):
        raise ValueError(f"{path}: 'qas' must be a list")
    out: dict[str, tuple[str, ...]] = {}
    for number, entry in enumerate(qas):
        where = f"{path}: qas[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("qa_id"), str):
            raise ValueError(f"{where}: needs a string 'qa_id'")
        flags = entry.get("flags", [])
        if not isinstance(flags, list) or not all(isinstance(f, dict) and isinstance(f.get("reason"), str)
                                                  for f in flags):
            raise ValueError(f"{where} ({entry['qa_id']}): 'flags' must be a list of {{\"reason\": text, ...}}")
        reasons = tuple(flag_text(f) for f in flags if f["reason"].strip())
        if reasons:
            out[entry["qa_id"]] = out.get(entry["qa_id"], ()) + reasons
    return out


def _build_flags(qa_path: Path) -> dict[str, tuple[str, ...]]:
    """The flags of a build's QA file, from its sidecar (none, with a WARNING, when it has none)."""
    from ravst.pipeline.qa import read_sidecar, sidecar_path

    path = sidecar_path(qa_path)
    meta = read_sidecar(qa_path)
    stray = qa_path.parent / FLAGS_FILENAME
    if stray.is_file():
        log.warning("%s is not read: a build's flags come from its QA sidecar %s", stray, path)
    if meta is None:
        log.warning("%s: no sidecar %s (a QA file not written by 'ravst build qa'?): no item is flagged",
                    qa_path, path.name)
        return {}
    return sidecar_flags(meta, path)


def _load(qa_path: Path, videos_dir: Path, roots: Sequence[Path], flags: Mapping[str, tuple[str, ...]],
          flags_source: Path, data_dir: Path) -> ReviewData:
    from ravst.formats.official import read_official

    source = qa_path.read_bytes()
    items = tuple(read_official(qa_path))
    ids = [item.qa_id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{qa_path}: duplicate QA ids")
    real_roots = tuple(Path(os.path.realpath(r)) for r in roots)
    videos, skipped = _index_videos(videos_dir, real_roots)
    missing = sorted({item.video for item in items if item.video not in videos})
    if missing:
        log.warning(
            "%s: %d of %d videos have no file in %s (their items are not handed out), e.g. %s",
            qa_path, len(missing), len({i.video for i in items}), videos_dir, missing[:3],
        )
    unknown = sorted(set(flags) - set(ids))
    if unknown:
        raise ValueError(f"{flags_source}: {len(unknown)} flagged qa_id(s) are not in {qa_path}, e.g. {unknown[:3]}")
    return ReviewData(data_dir, qa_path, items, source, videos, real_roots, dict(flags), tuple(skipped), videos_dir)


def load_review_data(data_dir: str | Path, *, allow_roots: Sequence[str | Path] = ()) -> ReviewData:
    """Read ``DIR/qa.json`` (official format), ``DIR/flags.jsonl`` when present, and index
    ``DIR/videos`` (real paths must stay inside ``DIR`` or one of ``allow_roots``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"{data_dir}: data folder does not exist")
    qa_path = data_dir / QA_FILENAME
    if not qa_path.is_file():
        raise ValueError(f"{data_dir}: no {QA_FILENAME} (official R-AVST QA file) in the data folder")
    flags_path = data_dir / FLAGS_FILENAME
    flags = read_flags(flags_path) if flags_path.is_file() else {}
    return _load(qa_path, data_dir / VIDEOS_DIRNAME, [data_dir, *map(Path, allow_roots)], flags, flags_path,
                 data_dir)


def load_build_data(build_dir: str | Path, videos_dir: str | Path, *,
                    allow_roots: Sequence[str | Path] = ()) -> ReviewData:
    """Read a build's ``BUILD/qa/r_avst_qa.json``, the flags of its sidecar
    ``BUILD/qa/r_avst_qa.meta.json`` (as ``ravst build qa`` writes them) and index ``videos_dir``
    (real paths must stay inside ``videos_dir`` or one of ``allow_roots``)."""
    build_dir, videos_dir = Path(build_dir), Path(videos_dir)
    if not build_dir.is_dir():
        raise ValueError(f"--build {build_dir}: no such folder")
    qa_path = build_dir / BUILD_QA_PATH
    if not qa_path.is_file():
        raise ValueError(f"--build {build_dir}: no {BUILD_QA_PATH} (run 'ravst build qa' on this build first)")
    if not (qa_path.parent / "manifest.json").is_file():
        raise ValueError(f"--build {build_dir}: the qa stage has not finished (no qa/manifest.json); "
                         "re-run 'ravst build qa'")
    if not videos_dir.is_dir():
        raise ValueError(f"--videos {videos_dir}: no such folder")
    return _load(qa_path, videos_dir, [videos_dir, *map(Path, allow_roots)], _build_flags(qa_path),
                 build_dir / BUILD_SIDECAR_PATH, build_dir)


def no_reviewable_reason(data: ReviewData) -> str | None:
    """Why no item of ``data`` can be handed out (None when some can)."""
    if not data.items:
        return f"{data.qa_path}: the QA file holds no QA"
    if any(item.video in data.videos for item in data.items):
        return None
    names = sorted({item.video for item in data.items})
    where = data.videos_dir or data.data_dir / VIDEOS_DIRNAME
    reason = (f"0 reviewable items: none of the {len(names)} videos of {data.qa_path} has a file in {where} "
              f"(looked for <video_name> + one of {' '.join(VIDEO_EXTENSIONS)}, e.g. {names[0]}.mp4)")
    if data.skipped_videos:
        reason += (f"; {len(data.skipped_videos)} file(s) there were skipped because their real path is outside "
                   f"{', '.join(map(str, data.allowed_roots))} (e.g. {data.skipped_videos[0]}; add --allow-root)")
    return reason


def register_items(db: ReviewDB, data: ReviewData, judge_scores: Mapping[str, float] | None = None) -> int:
    """Store the QAs of ``data`` in the database (first time) or refresh their reviewable flags,
    and order the queue (flagged first, then lowest judge score). Returns the reviewable count."""
    reviewable = [item.video in data.videos for item in data.items]
    db.load_items(
        [(item.qa_id, item.video, item.task.value, item.kind) for item in data.items],
        data.source_bytes,
        reviewable=reviewable,
    )
    db.set_priorities(data.flags, judge_scores or {})
    return sum(reviewable)


def _timeline(items: Sequence[QAItem], current: QAItem) -> list[dict[str, Any]]:
    """Events of ``current``'s video: one entry per event index with its span and objects."""
    events: dict[int, dict[str, Any]] = {}
    for item in items:
        if item.video != current.video:
            continue
        entry = events.setdefault(item.event_index, {"event_index": item.event_index, "span": None, "objects": []})
        span = item.answer.span if item.task.value != "spatial" else item.query_span
        if span is None:
            span = item.answer.span or item.query_span
        if entry["span"] is None and span is not None:
            entry["span"] = [span.start_s, span.end_s]
        names = list(item.answer.objects) + ([item.query_object] if item.query_object else [])
        for name in names:
            if name and name not in entry["objects"]:
                entry["objects"].append(name)
    out = [events[k] for k in sorted(events)]
    for entry in out:
        entry["current"] = entry["event_index"] == current.event_index
    return out


def item_payload(item: QAItem, item_id: int, all_items: Sequence[QAItem],
                 flags: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON the page shows for one item (ground truth and the builder's flag reasons; never
    anyone's score). ``all_items``: at least the items of the same video (for the timeline)."""
    answer = item.answer
    return {
        "id": item_id,
        "qa_id": item.qa_id,
        "video": item.video,
        "duration_s": item.duration_s,
        "task": item.task.value,
        "kind": item.kind,
        "category": item.category,
        "question": item.question,
        "query_object": item.query_object,
        "query_span": None if item.query_span is None else item.query_span.as_list(),
        "answer": {
            "objects": list(answer.objects),
            "spans": [span.as_list() for span in answer.spans],
            "tracks": [
                {"name": track.name, "times_s": track.times_s.tolist(), "xyxy": track.xyxy.tolist()}
                for track in answer.tracks
            ],
        },
        "timeline": _timeline(all_items, item),
        "flags": list(flags),
    }


def _sign(secret: bytes, video_index: int, reviewer_id: int, expires: int) -> str:
    message = f"{video_index}:{reviewer_id}:{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _safe_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without the offending input (it may be NaN, huge, or not JSON-able)."""
    out = []
    for err in errors:
        loc = [x if isinstance(x, (str, int)) else str(x) for x in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out


_SECURITY_HEADER_BYTES = tuple((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items())


def _with_security_headers(send: Any, api: bool) -> Any:
    """``send`` that adds ``SECURITY_HEADERS`` (and ``Cache-Control: no-store`` on ``/api``) to
    the response start unless the app set them (a pure-ASGI wrapper: no extra task per request)."""

    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", ())}
            extra = [(k, v) for k, v in _SECURITY_HEADER_BYTES if k not in present]
            if api and b"cache-control" not in present:
                extra.append((b"cache-control", b"no-store"))
            if extra:
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return wrapped


async def _send_json(send: Any, status: int, detail: str, extra_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Pure ASGI: authenticate ``/api/*`` and bound every request body BEFORE it is read.

    On ``/api/*``: a missing, malformed or unknown token is a 401 answered from the headers
    alone; a ``Content-Length`` over ``MAX_API_BODY_BYTES`` is a 413 answered from the headers;
    a body without ``Content-Length`` (chunked) is read here up to the limit and refused (413)
    as soon as it goes over. Elsewhere, any request body is refused (413). The reviewer is left in
    ``scope["ravst.reviewer"]`` for the endpoints. Nothing unread is ever buffered: the
    connection is closed after such an answer.
    """

    def __init__(self, app: Any, db: ReviewDB, *, max_body_bytes: int = MAX_API_BODY_BYTES,
                 review_state: ReviewState | None = None, hot: HotRoutes | None = None) -> None:
        self.app = app
        self.state = getattr(app, "state", None)
        self.db = db
        self.review_state = review_state
        self.hot = hot
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_send = send
        send = _with_security_headers(send, str(scope.get("path", "")).startswith("/api/"))
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers", ()):
            headers.setdefault(key.lower(), value)
        is_api = str(scope.get("path", "")).startswith("/api/")
        limit = self.max_body_bytes if is_api else 0
        length_raw = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if is_api:
            who, problem = self._authenticate(headers.get(b"authorization"))
            if who is None:
                await _send_json(send, 401, problem, [(b"www-authenticate", b"Bearer")])
                return
            scope["ravst.reviewer"] = who
        if length_raw is not None:
            try:
                length = int(length_raw.decode("latin-1").strip())
                if length < 0:
                    raise ValueError(length)
            except ValueError:
                await _send_json(send, 400, "bad Content-Length header")
                return
            if length > limit:
                what = f"at most {limit} bytes are accepted on /api" if is_api else "this path takes no body"
                await _send_json(send, 413, f"request body of {length} bytes refused: {what}")
                return
        elif chunked and limit == 0:
            await _send_json(send, 413, "this path takes no body")
            return
        if not chunked:
            await self._route(scope, receive, send, raw_send, is_api)
            return
        # chunked: read at most ``limit`` bytes here, then hand the (small) body to the app
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > limit:
                await _send_json(send, 413, f"request body over {limit} bytes refused")
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self._route(scope, replay, send, raw_send, is_api)

    async def _route(self, scope: dict[str, Any], receive: Any, send: Any, raw_send: Any, is_api: bool) -> None:
        """The hot API routes here (they write their own complete headers), the rest in FastAPI."""
        if is_api and self.hot is not None:
            receive = await self.hot.handle(scope, receive, raw_send, scope["ravst.reviewer"])
            if receive is None:
                return
        await self.app(scope, receive, send)

    def _authenticate(self, header: bytes | None) -> tuple[Any, str]:
        if not header:
            return None, "missing token: send 'Authorization: Bearer <token>'"
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            return None, "malformed Authorization header: expected 'Bearer <token>'"
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, "malformed Authorization header: expected 'Bearer <token>'"
        if self.review_state is not None:
            found = self.review_state.reviewer_for_token(token.strip())
        else:
            found = self.db.reviewer_for_token(token.strip())
        if found is None:
            return None, "unknown token"
        return found, ""


def _load_judge_scores(path: str | Path | None) -> dict[str, float]:
    if path is None:
        return {}
    from ravst.judge import read_judge_scores

    scores, failed = read_judge_scores(Path(path))
    if failed:
        log.warning("%s: %d judge records carry an error (no score): their items keep file order", path, failed)
    return {qa_id: float(record.score) for qa_id, record in scores.items() if record.score is not None}


def create_app(
    data_dir: str | Path | None,
    db_path: str | Path,
    *,
    build_dir: str | Path | None = None,
    videos_dir: str | Path | None = None,
    allow_roots: Sequence[str | Path] = (),
    judge_scores: str | Path | None = None,
    max_body_bytes: int = MAX_API_BODY_BYTES,
) -> Any:
    """Build the FastAPI application over a data folder (``data_dir``) or a build folder
    (``build_dir`` + ``videos_dir``) and a review database. ``judge_scores``: a ``ravst judge``
    output whose scores order the queue (lowest first, after flagged items). Raises
    ``ValueError`` when no item can be reviewed, with the reason."""
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

    if build_dir is not None:
        if data_dir is not None:
            raise ValueError("give a data folder or a build folder, not both")
        if videos_dir is None:
            raise ValueError("--build needs --videos (the folder of the build's videos)")
        data = load_build_data(build_dir, videos_dir, allow_roots=allow_roots)
    elif data_dir is not None:
        data = load_review_data(data_dir, allow_roots=allow_roots)
    else:
        raise ValueError("give a data folder (--data) or a build folder (--build with --videos)")
    reason = no_reviewable_reason(data)
    if reason is not None:
        raise ValueError(reason)
    judge = _load_judge_scores(judge_scores)
    db = ReviewDB(db_path)
    register_items(db, data, judge)
    if data.flags or judge:
        log.info("queue order: %d flagged items first, then %d by judge score (lowest first)",
                 len(data.flags), len(judge))
    secret = db.media_secret()
    state = ReviewState(db, loop_writes=True)  # who holds what, scores and counters, in memory (ravst.review.state)
    rows = db.item_rows()
    by_qa_id = {item.qa_id: item for item in data.items}
    items_by_id: dict[int, QAItem] = {row.id: by_qa_id[row.qa_id] for row in rows if row.qa_id in by_qa_id}
    items_by_video: dict[str, list[QAItem]] = {}
    for item in data.items:
        items_by_video.setdefault(item.video, []).append(item)
    video_names = sorted(data.videos)
    video_index = {name: i for i, name in enumerate(video_names)}
    item_cache: dict[int, bytes] = {}

    def item_json(item_id: int) -> bytes | None:
        """The item's JSON without ``own`` and ``video_url``, built once (None: unknown id)."""
        cached = item_cache.get(item_id)
        if cached is None:
            item = items_by_id.get(item_id)
            if item is None:
                return None
            cached = dumps(item_payload(item, item_id, items_by_video[item.video], data.flags.get(item.qa_id, ())))
            item_cache[item_id] = cached
        return cached

    def video_url(reviewer_id: int, item_id: int) -> str | None:
        video = items_by_id[item_id].video
        if data.video_path(video) is None:
            return None
        expires = int(time.time() + MEDIA_URL_TTL_S)
        n = video_index[video]
        return f"/media/{n}?r={reviewer_id}&exp={expires}&sig={_sign(secret, n, reviewer_id, expires)}"

    api_headers = [*_SECURITY_HEADER_BYTES, (b"cache-control", b"no-store")]
    me_extra = {"scale": {str(k): v for k, v in sorted(SCALE_LABELS.items())}, "reviews_per_item": REVIEWS_PER_ITEM}
    hot = HotRoutes(state, item_json, video_url, me_extra, api_headers)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        # claims and scores: group commit from the event loop (ravst.review.loopwriter)
        try:
            yield
        finally:
            await state.close()
            log.info("%s: writer thread: %s", db.path, state.writer_stats().summary())

    app = FastAPI(title="ravst review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.db = db
    app.state.data = data

    class ScoreIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        score: StrictInt = Field(ge=1, le=4, description="1 poor, 2 fair, 3 good, 4 excellent")
        note: StrictStr = Field(default="", max_length=MAX_NOTE_CHARS_API)
        revise: StrictBool = False

    async def reviewer(request: Request) -> Any:
        found = request.scope.get("ravst.reviewer")
        if found is None:  # the middleware answers 401 first; this is a second lock on the door
            raise HTTPException(401, "missing token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        return found

    Who = Annotated[Any, Depends(reviewer)]

    def answer(status_body: tuple[int, bytes]) -> Any:
        return Response(content=status_body[1], status_code=status_body[0], media_type="application/json")

    @app.get("/", include_in_schema=False)
    async def index() -> Any:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Any:
        if name not in STATIC_FILES:
            raise HTTPException(404, "not found")
        return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name],
                            headers={"Cache-Control": "no-cache"})

    # the same answers as HotRoutes (which serves these four routes first, ravst.review.routes):
    # reached only for what it hands on (FastAPI then validates and reports errors)
    @app.get("/api/me")
    async def me(who: Who) -> Any:
        return answer(hot.me(who))

    @app.get("/api/next")
    async def next_item(who: Who) -> Any:
        return answer(await hot.next(who))

    @app.get("/api/assignments")
    async def assignments(who: Who) -> Any:
        return {
            "assignments": [
                {"item_id": a.item_id, "qa_id": a.qa_id, "score": a.score} for a in db.assignments(who.id)
            ]
        }

    @app.get("/api/items/{item_id}")
    async def get_item(item_id: int, who: Who) -> Any:
        return answer(hot.item(who, item_id))

    @app.post("/api/items/{item_id}/score")
    async def score_item(item_id: int, request: Request, who: Who) -> Any:
        if item_id not in items_by_id:
            raise HTTPException(404, f"no item {item_id}")
        try:
            body = ScoreIn.model_validate(strict_json(await request.body()))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            detail = _safe_errors(exc.errors()) if isinstance(exc, ValidationError) else str(exc)
            return JSONResponse({"detail": detail}, status_code=422)
        return answer(await hot.score(who, item_id, body.score, body.note, body.revise))

    @app.api_route("/media/{n}", methods=["GET", "HEAD"], include_in_schema=False)
    async def media(n: int, r: int, exp: int, sig: str) -> Any:
        if not 0 <= n < len(video_names):
            raise HTTPException(404, "no such video")
        if exp < time.time():
            raise HTTPException(403, "video link expired: reload the item")
        if not (sig.isascii() and hmac.compare_digest(_sign(secret, n, r, exp).encode(), sig.encode("ascii"))):
            raise HTTPException(403, "bad video link signature")
        # the real path NOW (the file may have been swapped for a link since start-up)
        real = inside_roots(data.videos[video_names[n]], data.allowed_roots)
        if real is None:
            log.warning("refused %s: its real path is no longer a regular file inside %s",
                        data.videos[video_names[n]], ", ".join(map(str, data.allowed_roots)))
            raise HTTPException(404, "video file is no longer available")
        return FileResponse(real, headers={"Cache-Control": "private, max-age=3600"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        return JSONResponse({"detail": _safe_errors(exc.errors())}, status_code=422)

    @app.exception_handler(ReviewDBError)
    async def db_error(request: Request, exc: ReviewDBError) -> Any:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.state.review_state = state
    return GuardMiddleware(app, db, max_body_bytes=max_body_bytes, review_state=state, hot=hot)
