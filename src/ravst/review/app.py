"""The review web app: ``create_app(data_dir, db_path)`` returns a FastAPI application.

Data folder layout (docs/review.md): ``DIR/qa.json`` is a QA file in the official R-AVST format
and ``DIR/videos/<video_name>.<ext>`` holds the clips (``ext`` one of ``VIDEO_EXTENSIONS``).
Every ``/api`` call needs ``Authorization: Bearer <token>``. The ``<video>`` element cannot send
that header, so the item payload carries a short-lived URL signed for that reviewer
(``/media/<n>?r=..&exp=..&sig=..``); the file behind it comes from an index built at start-up
of the files inside ``DIR/videos`` (no path from a request ever reaches the file system).

This module imports FastAPI inside ``create_app`` (an optional dependency) and deliberately has
no ``from __future__ import annotations``: FastAPI reads the endpoint annotations at run time.
"""

import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from ravst.review.db import REVIEWS_PER_ITEM, ConflictError, NotAssignedError, ReviewDB, ReviewDBError
from ravst.review.kappa import SCALE_LABELS
from ravst.types import QAItem

__all__ = [
    "MEDIA_URL_TTL_S",
    "QA_FILENAME",
    "VIDEOS_DIRNAME",
    "VIDEO_EXTENSIONS",
    "ReviewData",
    "create_app",
    "item_payload",
    "load_review_data",
]

log = logging.getLogger(__name__)

QA_FILENAME = "qa.json"
VIDEOS_DIRNAME = "videos"
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".m4v", ".mov", ".ogv", ".mkv")
"""Looked up in this order for ``videos/<video_name><ext>``; browsers play mp4 (H.264) and webm."""
MEDIA_URL_TTL_S = 6 * 3600.0
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


@dataclass(frozen=True)
class ReviewData:
    """The QAs of a data folder and the video file of each video name (None when missing)."""

    data_dir: Path
    qa_path: Path
    items: tuple[QAItem, ...]
    source_bytes: bytes
    videos: dict[str, Path]

    def video_path(self, video: str) -> Path | None:
        return self.videos.get(video)


def _index_videos(data_dir: Path) -> dict[str, Path]:
    """``{stem: path}`` of the playable files directly inside ``data_dir/videos``.

    A file (or symbolic link) whose real path is not inside the data folder is skipped.
    """
    root = data_dir.resolve()
    folder = data_dir / VIDEOS_DIRNAME
    found: dict[str, Path] = {}
    if not folder.is_dir():
        log.warning("%s: no %s/ folder; no item can be reviewed", data_dir, VIDEOS_DIRNAME)
        return found
    rank = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}
    for path in sorted(folder.iterdir()):
        ext = path.suffix.lower()
        if ext not in rank:
            continue
        real = path.resolve()
        if not real.is_relative_to(root) or not real.is_file():
            log.warning("%s: skipped (not a regular file inside %s)", path, root)
            continue
        previous = found.get(path.stem)
        if previous is None or rank[ext] < rank[previous.suffix.lower()]:
            found[path.stem] = real
    return found


def load_review_data(data_dir: str | Path) -> ReviewData:
    """Read ``DIR/qa.json`` (official format) and index ``DIR/videos``."""
    from ravst.formats.official import read_official

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"{data_dir}: data folder does not exist")
    qa_path = data_dir / QA_FILENAME
    if not qa_path.is_file():
        raise ValueError(f"{data_dir}: no {QA_FILENAME} (official R-AVST QA file) in the data folder")
    source = qa_path.read_bytes()
    items = tuple(read_official(qa_path))
    ids = [item.qa_id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{qa_path}: duplicate QA ids")
    videos = _index_videos(data_dir)
    missing = sorted({item.video for item in items if item.video not in videos})
    if missing:
        log.warning(
            "%s: %d of %d videos have no file in %s/ (their items are not handed out), e.g. %s",
            data_dir, len(missing), len({i.video for i in items}), VIDEOS_DIRNAME, missing[:3],
        )
    return ReviewData(data_dir, qa_path, items, source, videos)


def register_items(db: ReviewDB, data: ReviewData) -> None:
    """Store the QAs of ``data`` in the database (first time) or refresh their reviewable flags."""
    db.load_items(
        [(item.qa_id, item.video, item.task.value, item.kind) for item in data.items],
        data.source_bytes,
        reviewable=[item.video in data.videos for item in data.items],
    )


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


def item_payload(item: QAItem, item_id: int, all_items: Sequence[QAItem]) -> dict[str, Any]:
    """The JSON the page shows for one item (ground truth only: never anyone's score)."""
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
    }


def _sign(secret: bytes, video_index: int, reviewer_id: int, expires: int) -> str:
    message = f"{video_index}:{reviewer_id}:{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def create_app(data_dir: str | Path, db_path: str | Path) -> Any:
    """Build the FastAPI application over a data folder and a review database."""
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

    data = load_review_data(data_dir)
    db = ReviewDB(db_path)
    register_items(db, data)
    secret = db.media_secret()
    rows = db.item_rows()
    by_qa_id = {item.qa_id: item for item in data.items}
    items_by_id: dict[int, QAItem] = {row.id: by_qa_id[row.qa_id] for row in rows if row.qa_id in by_qa_id}
    video_names = sorted(data.videos)
    video_index = {name: i for i, name in enumerate(video_names)}

    app = FastAPI(title="ravst review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.db = db
    app.state.data = data

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    class ScoreIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        score: StrictInt = Field(ge=1, le=4, description="1 poor, 2 fair, 3 good, 4 excellent")
        note: StrictStr = Field(default="", max_length=2000)
        revise: StrictBool = False

    def reviewer(request: Request) -> Any:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise HTTPException(401, "missing token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "malformed Authorization header: expected 'Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        found = db.reviewer_for_token(token.strip())
        if found is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        return found

    Who = Annotated[Any, Depends(reviewer)]

    def assigned_item(item_id: int, who: Any) -> QAItem:
        item = items_by_id.get(item_id)
        if item is None:
            raise HTTPException(404, f"no item {item_id}")
        if not db.is_assigned(who.id, item_id):
            raise HTTPException(403, f"item {item_id} is not assigned to you")
        return item

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Any:
        if name not in STATIC_FILES:
            raise HTTPException(404, "not found")
        return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name],
                            headers={"Cache-Control": "no-cache"})

    @app.get("/api/me")
    def me(who: Who) -> Any:
        return {
            "name": who.name,
            "progress": db.progress(who.id),
            "scale": {str(k): v for k, v in sorted(SCALE_LABELS.items())},
            "reviews_per_item": REVIEWS_PER_ITEM,
        }

    @app.get("/api/next")
    def next_item(who: Who) -> Any:
        item_id = db.next_item(who.id)
        return {"item_id": item_id, "done": item_id is None, "progress": db.progress(who.id)}

    @app.get("/api/assignments")
    def assignments(who: Who) -> Any:
        return {
            "assignments": [
                {"item_id": a.item_id, "qa_id": a.qa_id, "score": a.score} for a in db.assignments(who.id)
            ]
        }

    @app.get("/api/items/{item_id}")
    def get_item(item_id: int, who: Who) -> Any:
        item = assigned_item(item_id, who)
        payload = item_payload(item, item_id, data.items)
        own = db.own_score(who.id, item_id)
        payload["own"] = None if own is None else {"score": own[0], "note": own[1]}
        path = data.video_path(item.video)
        if path is None:
            payload["video_url"] = None
        else:
            expires = int(time.time() + MEDIA_URL_TTL_S)
            n = video_index[item.video]
            sig = _sign(secret, n, who.id, expires)
            payload["video_url"] = f"/media/{n}?r={who.id}&exp={expires}&sig={sig}"
        return payload

    @app.post("/api/items/{item_id}/score")
    def score_item(item_id: int, body: ScoreIn, who: Who) -> Any:
        if item_id not in items_by_id:
            raise HTTPException(404, f"no item {item_id}")
        try:
            result = db.submit_score(who.id, item_id, body.score, body.note, revise=body.revise)
        except NotAssignedError as exc:
            raise HTTPException(403, str(exc)) from exc
        except ConflictError as exc:
            raise HTTPException(409, str(exc)) from exc
        except ReviewDBError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {
            "status": result.status,
            "item_id": result.item_id,
            "score": result.score,
            "note": result.note,
            "progress": db.progress(who.id),
        }

    @app.api_route("/media/{n}", methods=["GET", "HEAD"], include_in_schema=False)
    def media(n: int, r: int, exp: int, sig: str) -> Any:
        if not 0 <= n < len(video_names):
            raise HTTPException(404, "no such video")
        if exp < time.time():
            raise HTTPException(403, "video link expired: reload the item")
        if not hmac.compare_digest(_sign(secret, n, r, exp), sig):
            raise HTTPException(403, "bad video link signature")
        path = data.videos[video_names[n]]
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    @app.exception_handler(ReviewDBError)
    async def db_error(request: Request, exc: ReviewDBError) -> Any:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    return app
