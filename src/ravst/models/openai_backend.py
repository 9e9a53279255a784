"""Backend for any OpenAI-compatible chat endpoint (``POST {base_url}/chat/completions``).

The clip is sampled like for the local backends (real timestamps, Qwen's smart resize by min /
max pixels) and sent as base64 JPEG images, each preceded by a text part that gives its time
("Frame at 3.0 s:"); a first text part states the clip's length and the frame size, so boxes come
back in the pixels of the frames sent (``coord_space="input"`` with ``input_wh``). Audio is not
sent (chat endpoints take no audio-in-video). Requests of a batch run concurrently; 429 and 5xx
answers are retried with exponential back-off.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ravst.models.base import InferRequest
from ravst.models.qwen import GenerationSettings
from ravst.models.sampling import SampledVideo, SamplingConfig, sample_video
from ravst.types import CoordSpace, Prediction

__all__ = ["OpenAIBackend", "chat_payload", "jpeg_data_url"]

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
JPEG_QUALITY = 90


def jpeg_data_url(frame: np.ndarray, quality: int = JPEG_QUALITY) -> str:
    """``data:image/jpeg;base64,...`` of an RGB uint8 frame."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chat_payload(
    model: str,
    system: str,
    user: str,
    video: SampledVideo,
    generation: GenerationSettings,
    *,
    video_first: bool = True,
) -> dict[str, Any]:
    """The JSON body of one chat-completions request (the frames before the user text, or after
    it when ``video_first`` is False)."""
    w, h = video.input_wh
    content: list[dict[str, Any]] = [
        {
            "type": "text",
            "text": (
                f"The video lasts {video.duration_s:.1f} s. Here are {len(video.times_s)} frames of it, "
                f"each {w}x{h} pixels, with their times in seconds. Give boxes in the pixels of these frames."
            ),
        }
    ]
    for t, frame in zip(video.times_s, video.frames, strict=True):
        content.append({"type": "text", "text": f"Frame at {float(t):.1f} s:"})
        content.append({"type": "image_url", "image_url": {"url": jpeg_data_url(frame)}})
    if video_first:
        content.append({"type": "text", "text": user})
    else:
        content.insert(0, {"type": "text", "text": user})
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": content})
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": generation.max_new_tokens,
        "temperature": generation.temperature if generation.do_sample else 0.0,
        "seed": generation.seed,
    }
    if generation.do_sample:
        body["top_p"] = generation.top_p
    return body


def _message_text(data: Any) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"unexpected chat-completions answer (no choices[0].message.content): {str(data)[:200]}") from exc
    if isinstance(content, list):  # some servers return content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is None:
        return ""
    return str(content)


class OpenAIBackend:
    """Frames as images to an OpenAI-compatible endpoint (vLLM serve, SGLang, OpenAI, ...)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str = "",
        sampling: SamplingConfig,
        generation: GenerationSettings | None = None,
        coord_space: CoordSpace = CoordSpace.INPUT,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 4,
    ) -> None:
        import httpx

        self.model = model
        self.name = f"openai:{model}"
        self.sampling = sampling
        self.generation = generation or GenerationSettings()
        self.coord_space = CoordSpace(coord_space)
        self.max_retries = max_retries
        self.concurrency = max(1, concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def _post(self, body: dict[str, Any]) -> Any:
        import httpx

        delay = 1.0
        for attempt in range(self.max_retries + 1):
            try:
                resp = self.client.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    raise OSError(f"chat endpoint unreachable: {exc}") from exc
            else:
                if resp.status_code < 400:
                    return resp.json()
                if resp.status_code not in RETRY_STATUS or attempt == self.max_retries:
                    raise ValueError(f"chat endpoint answered HTTP {resp.status_code}: {resp.text[:300]}")
            log.info("chat endpoint busy or failing; retry %d in %.0f s", attempt + 1, delay)
            time.sleep(delay)
            delay *= 2
        raise OSError("chat endpoint: retries exhausted")  # pragma: no cover - loop always returns or raises

    def _one(self, request: InferRequest) -> Prediction:
        start = time.perf_counter()
        video = sample_video(request.video_path, self.sampling)
        data = self._post(chat_payload(
                self.model, request.system, request.user, video, self.generation, video_first=request.video_first
            ))
        extra: dict[str, Any] = {"backend": "openai", "original_wh": list(video.original_wh)}
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            extra["usage"] = data["usage"]
        return Prediction(
            qa_id=request.item.qa_id,
            text=_message_text(data),
            model=self.name,
            coord_space=self.coord_space,
            input_wh=video.input_wh,
            frame_times_s=tuple(round(float(t), 4) for t in video.times_s),
            latency_s=round(time.perf_counter() - start, 4),
            extra=extra,
        )

    def predict(self, requests: Sequence[InferRequest]) -> list[Prediction]:
        if len(requests) == 1 or self.concurrency == 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def close(self) -> None:
        self.client.close()
