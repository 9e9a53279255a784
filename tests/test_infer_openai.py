"""The ``openai`` backend against a small OpenAI-compatible server started on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infer_helpers import DOG, N_QA, UNAV, read_jsonl, write_qa_file

pytest.importorskip("httpx")

from ravst.cli import main


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.server.state
        state["requests"].append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if state["fail_next"]:
            state["fail_next"] -= 1
            self._send(503, {"error": "busy"})
            return
        if body.get("model") == "bad-model":
            self._send(400, {"error": {"message": "unknown model"}})
            return
        self._send(200, _answer(body))

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """Reads the frames back (JPEG size, stated times) and answers from what it received."""
    from PIL import Image

    user = body["messages"][-1]["content"]
    times = [float(m.group(1)) for p in user if p["type"] == "text" for m in [re.match(r"Frame at ([\d.]+) s:", p["text"])] if m]
    images = [p["image_url"]["url"] for p in user if p["type"] == "image_url"]
    sizes = set()
    for url in images:
        assert url.startswith("data:image/jpeg;base64,")
        sizes.add(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size)
    (w, h) = sizes.pop()
    text = (
        f"<answer>\n<object>n{len(images)}</object>\n<when>[{times[0]}, {times[-1]}]</when>\n"
        f"<where>\n{times[0]}: [0.0, 0.0, {float(w)}, {float(h)}]\n</where>\n</answer>"
    )
    return {"choices": [{"message": {"role": "assistant", "content": text}}], "usage": {"prompt_tokens": 7}}


@pytest.fixture()
def server() -> Iterator[tuple[str, dict[str, Any]]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = {"requests": [], "fail_next": 0}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd.state  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _run(qa: Path, videos: Path, out: Path, url: str, model: str, *extra: str) -> int:
    args = ["infer", "--qa", str(qa), "--videos", str(videos), "--backend", "openai", "--model", model]
    args += ["--base-url", url, "--out", str(out), "--fps", "0.5", "--max-frames", "4", "--max-pixels", "50176"]
    return main(args + list(extra))


def test_openai_backend_sends_timestamped_frames(
    server: tuple[str, dict[str, Any]], videos_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = server
    monkeypatch.setenv("RAVST_TEST_KEY", "sk-test")
    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    state["fail_next"] = 1  # the first call gets a 503 and is retried
    assert _run(qa, videos_dir, out, url, "tiny-chat", "--api-key-env", "RAVST_TEST_KEY", "--batch-size", "2") == 0
    records = {r["qa_id"]: r for r in read_jsonl(out)}
    assert len(records) == N_QA and not any(r.get("error") for r in records.values())
    assert len(state["requests"]) == N_QA + 1
    req = state["requests"][-1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["messages"][0]["role"] == "system" and "<answer>" in req["body"]["messages"][0]["content"]
    unav = records[f"{UNAV}/0/temporal/0"]
    # 4 frames spread over 60 s; the server saw them (count, times, size) and answered from them
    # qwen-vl-utils' indices round(linspace(0, 899, 4)) at 15000/1001 fps
    assert np.allclose(unav["frame_times_s"], np.array([0, 300, 599, 899]) * 1001 / 15000, atol=1e-3)
    assert unav["input_wh"] == [252, 168] and unav["coord_space"] == "input"
    assert unav["text"].startswith("<answer>\n<object>n4</object>\n<when>[0.0, 60.0]</when>")  # last frame 59.99 s
    assert "[0.0, 0.0, 252.0, 168.0]" in unav["text"]
    assert unav["usage"] == {"prompt_tokens": 7} and unav["model"] == "openai:tiny-chat"
    dog = records[f"{DOG}/0/temporal/0"]
    assert len(dog["frame_times_s"]) == 4 and dog["original_wh"] == [854, 480]


def test_openai_backend_records_http_errors(server: tuple[str, dict[str, Any]], videos_dir: Path, tmp_path: Path) -> None:
    url, _ = server
    qa = write_qa_file(tmp_path)
    out = tmp_path / "pred.jsonl"
    assert _run(qa, videos_dir, out, url, "bad-model", "--limit", "2") == 1  # every QA failed
    records = read_jsonl(out)
    assert len(records) == 2 and all("HTTP 400" in r["error"] for r in records)
