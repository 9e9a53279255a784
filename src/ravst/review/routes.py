"""The review API's hot routes as plain ASGI: ``GET /api/next``, ``GET /api/me``,
``GET /api/items/{id}`` and ``POST /api/items/{id}/score``.

``GuardMiddleware`` (``ravst.review.app``) calls ``HotRoutes.handle`` after authenticating the
request. It answers only the well-formed requests of these four routes; everything else
(another path or method, an id that is not plain digits, a score body that is not exactly
``{"score": 1-4, "note": text, "revise": bool}``) is handed on to the FastAPI app, body included,
which gives the same answers and the same errors (422 and its ``loc``) as before. The answers
are byte for byte what FastAPI's ``JSONResponse`` writes (``ensure_ascii=False``, compact
separators). What it saves per request: FastAPI's routing, dependency solving (a thread-pool
hop), validation models and response encoding; the item JSON is built once per item and cached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ravst.review.db import ConflictError, NotAssignedError, ReviewDBError, Reviewer, WriteFailed
from ravst.review.state import ReviewState, StateOutOfStep

__all__ = ["MAX_NOTE_CHARS_API", "HotRoutes", "dumps", "strict_json"]

MAX_NOTE_CHARS_API = 2000
_SCORE_FIELDS = frozenset({"score", "note", "revise"})
_ITEMS_PREFIX = "/api/items/"
_MAX_ID_DIGITS = 18


def dumps(value: Any) -> bytes:
    """JSON as Starlette's ``JSONResponse`` renders it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


def strict_json(raw: bytes) -> Any:
    """Parse a request body: UTF-8 JSON without NaN / Infinity (ValueError otherwise)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not allowed in JSON")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=refuse)
    except UnicodeDecodeError as exc:
        raise ValueError(f"body is not UTF-8 ({exc.reason})") from exc
    except RecursionError as exc:
        raise ValueError("body is nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc


def plain_score_body(raw: bytes) -> tuple[int, str, bool] | None:
    """``(score, note, revise)`` when ``raw`` is a valid score body, else None (let FastAPI
    answer it: the same checks as its ``ScoreIn`` model, which then reports the error)."""
    try:
        body = strict_json(raw)
    except ValueError:
        return None
    if type(body) is not dict or "score" not in body or not body.keys() <= _SCORE_FIELDS:
        return None
    score, note, revise = body["score"], body.get("note", ""), body.get("revise", False)
    if type(score) is not int or not 1 <= score <= 4 or type(revise) is not bool:
        return None
    if type(note) is not str or len(note) > MAX_NOTE_CHARS_API:
        return None
    try:
        note.encode("utf-8")  # a lone surrogate (JSON "\ud800") is not text SQLite can store
    except UnicodeEncodeError:
        return None
    return score, note, revise


def _headers(extra: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(len(body)).encode()), *extra]


class HotRoutes:
    """The four hot routes over a ``ReviewState`` (see the module).

    ``item_json(item_id)``: the item's cached JSON object (bytes, without ``own`` and
    ``video_url``) or None for an unknown id; ``video_url(reviewer_id, item_id)``: its signed
    link (or None); ``me_extra``: the constant fields of ``/api/me``; ``headers``: the response
    headers besides ``content-length`` (content type, security headers, ``Cache-Control``).
    """

    def __init__(self, state: ReviewState, item_json: Callable[[int], bytes | None],
                 video_url: Callable[[int, int], str | None], me_extra: dict[str, Any],
                 headers: list[tuple[bytes, bytes]]) -> None:
        self.state = state
        self.item_json = item_json
        self.video_url = video_url
        self.me_extra = me_extra
        self.headers = [(b"content-type", b"application/json"), *headers]

    async def _send(self, send: Any, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": _headers(self.headers, body)})
        await send({"type": "http.response.body", "body": body})

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any, who: Reviewer) -> Any:
        """Answer the request and return None, or return the ``receive`` the FastAPI app must
        use (the original one, or a replay of a body read here)."""
        path, method = scope["path"], scope["method"]
        if method == "GET":
            if path == "/api/next":
                status, body = await self.next(who)
            elif path == "/api/me":
                status, body = self.me(who)
            elif path.startswith(_ITEMS_PREFIX) and _is_id(path[len(_ITEMS_PREFIX):]):
                status, body = self.item(who, int(path[len(_ITEMS_PREFIX):]))
            else:
                return receive
        elif method == "POST" and path.startswith(_ITEMS_PREFIX) and path.endswith("/score") \
                and _is_id(path[len(_ITEMS_PREFIX):-len("/score")]):
            raw = await _read_body(receive)
            if raw is None:
                return None  # the client went away
            parsed = plain_score_body(raw)
            if parsed is None:
                return _replay(raw, receive)
            status, body = await self.score(who, int(path[len(_ITEMS_PREFIX):-len("/score")]), *parsed)
        else:
            return receive
        await self._send(send, status, body)
        return None

    # -- the routes (also called by the FastAPI endpoints) ----------------------------------
    async def next(self, who: Reviewer) -> tuple[int, bytes]:
        try:
            item_id = await self.state.next_item(who.id)
        except StateOutOfStep as exc:
            return 503, dumps({"detail": str(exc)})
        return 200, dumps({"item_id": item_id, "done": item_id is None, "progress": self.state.progress(who.id)})

    def me(self, who: Reviewer) -> tuple[int, bytes]:
        return 200, dumps({"name": who.name, "progress": self.state.progress(who.id), **self.me_extra})

    def item(self, who: Reviewer, item_id: int) -> tuple[int, bytes]:
        base = self.item_json(item_id)
        if base is None:
            return 404, dumps({"detail": f"no item {item_id}"})
        if not self.state.is_assigned(who.id, item_id):
            return 403, dumps({"detail": f"item {item_id} is not assigned to you"})
        own = self.state.own_score(who.id, item_id)
        own_json = b"null" if own is None else dumps({"score": own[0], "note": own[1]})
        url = self.video_url(who.id, item_id)
        return 200, b"".join((base[:-1], b',"own":', own_json, b',"video_url":', dumps(url), b"}"))

    async def score(self, who: Reviewer, item_id: int, score: int, note: str, revise: bool) -> tuple[int, bytes]:
        if self.item_json(item_id) is None:
            return 404, dumps({"detail": f"no item {item_id}"})
        try:
            result = await self.state.submit_score(who.id, item_id, score, note, revise=revise)
        except NotAssignedError as exc:
            return 403, dumps({"detail": str(exc)})
        except ConflictError as exc:
            return 409, dumps({"detail": str(exc)})
        except WriteFailed as exc:  # nothing stored: retry
            return 503, dumps({"detail": str(exc)})
        except ReviewDBError as exc:
            return 400, dumps({"detail": str(exc)})
        except StateOutOfStep as exc:
            return 503, dumps({"detail": str(exc)})
        return 200, dumps({"status": result.status, "item_id": result.item_id, "score": result.score,
                           "note": result.note, "progress": self.state.progress(who.id)})


def _is_id(text: str) -> bool:
    return 0 < len(text) <= _MAX_ID_DIGITS and text.isascii() and text.isdigit()


async def _read_body(receive: Any) -> bytes | None:
    """The whole body (``GuardMiddleware`` has bounded it already), or None on a disconnect."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(raw: bytes, receive: Any) -> Any:
    replayed = False

    async def replay() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay
