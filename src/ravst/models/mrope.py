"""Multimodal RoPE (MRoPE) position ids of Qwen2.5-VL and Qwen2.5-Omni, by the reference rule.

The rule the models were trained with (Qwen2.5-VL / Qwen2.5-Omni papers; vLLM's
``get_mrope_input_positions``; the Qwen team's Omni code in transformers):

- a text token gets one position on all three rows (temporal, height, width), the previous
  token's maximum + 1;
- a video block of merged grid ``(t, h, w)`` (``h``, ``w`` after the 2x2 spatial merge) that starts
  after position ``s - 1`` gets, for the token of grid step ``g``, row ``i``, column ``j``:
  ``(s + floor(g * second_per_grid * tokens_per_second), s + i, s + j)``;
  the token after the block starts at the block's maximum + 1;
- Qwen2.5-Omni, audio as its own input: each audio token one position, like text;
- Qwen2.5-Omni with the video's own audio (``use_audio_in_video``): the layout
  ``<vision_bos><audio_bos> [video chunk][audio chunk] ... <audio_eos><vision_eos>``; both ``bos``
  share one position ``p``; video tokens get the video rule with ``s = p + 1``; audio token ``a``
  gets ``p + 1 + a`` (25 per second, so audio and video of the same second share temporal
  positions); chunks of ``seconds_per_chunk`` (2 s) alternate; both ``eos`` get the maximum of
  the block's last chunk + 1.

transformers 5.24 starts the text after a Qwen2.5-VL video at ``s + max(h, w)`` instead (inside
the video's time range), so ravst computes the positions itself and passes them to the model in
every path (see :func:`position_ids_for` and :func:`install_reference_positions`);
:func:`verify_model_positions` checks, on a tiny synthetic input, that the positions reaching
the model's rotary embedding are these.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PositionCheck",
    "PositionMismatchError",
    "RopeSpec",
    "audio_token_count",
    "capture_rotary_positions",
    "install_reference_positions",
    "position_ids_for",
    "rope_spec",
    "sequence_positions",
    "verify_model_positions",
]

log = logging.getLogger(__name__)


class PositionMismatchError(ValueError):
    """The positions reaching the model differ from the reference rule and cannot be corrected."""


@dataclass(frozen=True)
class RopeSpec:
    """The token ids and constants the position rule needs (from a model config)."""

    omni: bool
    video_token_id: int
    image_token_id: int
    vision_start_token_id: int
    vision_end_token_id: int
    spatial_merge_size: int
    tokens_per_second: float
    audio_token_id: int = -1
    audio_start_token_id: int = -1
    audio_end_token_id: int = -1
    seconds_per_chunk: float = 2.0

    @property
    def chunk_positions(self) -> int:
        """Temporal positions per interleaving chunk (Omni: 25 x 2 s = 50)."""
        return int(self.tokens_per_second * self.seconds_per_chunk)


def _get(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    raise ValueError(f"model config {type(config).__name__} has none of {names}: cannot compute MRoPE positions")


def rope_spec(config: Any) -> RopeSpec:
    """The :class:`RopeSpec` of a Qwen2.5-VL, Qwen2.5-Omni thinker or full Qwen2.5-Omni config."""
    config = getattr(config, "config", config)
    model_type = str(getattr(config, "model_type", ""))
    if model_type == "qwen2_5_omni":
        config = config.thinker_config
        model_type = str(config.model_type)
    vision = config.vision_config
    if "omni" in model_type:
        tps = float(_get(config, "position_id_per_seconds"))
        vision_tps = getattr(vision, "tokens_per_second", None)
        if vision_tps is not None and float(vision_tps) != tps:
            raise ValueError(f"Omni config: position_id_per_seconds {tps} != vision_config.tokens_per_second "
                             f"{vision_tps}: ambiguous time scale")
        return RopeSpec(
            omni=True,
            video_token_id=int(_get(config, "video_token_id", "video_token_index")),
            image_token_id=int(_get(config, "image_token_id", "image_token_index")),
            vision_start_token_id=int(_get(config, "vision_start_token_id")),
            vision_end_token_id=int(_get(config, "vision_end_token_id")),
            spatial_merge_size=int(vision.spatial_merge_size),
            tokens_per_second=tps,
            audio_token_id=int(_get(config, "audio_token_id", "audio_token_index")),
            audio_start_token_id=int(_get(config, "audio_start_token_id")),
            audio_end_token_id=int(_get(config, "audio_end_token_id")),
            seconds_per_chunk=float(_get(config, "seconds_per_chunk")),
        )
    if "qwen2_5_vl" not in model_type:
        raise ValueError(f"MRoPE positions: unsupported model_type {model_type!r} (Qwen2.5-VL or Qwen2.5-Omni)")
    return RopeSpec(
        omni=False,
        video_token_id=int(_get(config, "video_token_id")),
        image_token_id=int(_get(config, "image_token_id")),
        vision_start_token_id=int(_get(config, "vision_start_token_id")),
        vision_end_token_id=int(_get(config, "vision_end_token_id")),
        spatial_merge_size=int(vision.spatial_merge_size),
        tokens_per_second=float(_get(vision, "tokens_per_second")),
    )


def audio_token_count(feature_length: int) -> int:
    """Audio tokens of Qwen2.5-Omni's audio encoder for ``feature_length`` mel frames (100 / s):
    a stride-2 convolution then a 2x pooling, i.e. 25 tokens per second.

    >>> audio_token_count(6000), audio_token_count(400), audio_token_count(4)
    (1500, 100, 1)
    """
    n = int(feature_length)
    return ((n - 1) // 2 + 1 - 2) // 2 + 1


def _video_block(grid_thw: Sequence[int], second_per_grid: float, spec: RopeSpec, start: int) -> np.ndarray:
    """``(3, t*h*w)`` positions of a video block starting at ``start`` (t-major, then rows, columns)."""
    t, h, w = (int(grid_thw[0]), int(grid_thw[1]) // spec.spatial_merge_size,
               int(grid_thw[2]) // spec.spatial_merge_size)
    # float32 (torch's default dtype) and vLLM's order: (step * second_per_grid) * tokens_per_second,
    # then truncation
    steps = np.arange(t, dtype=np.float32) * np.float32(second_per_grid)
    t_index = (steps * np.float32(spec.tokens_per_second)).astype(np.int64)
    tt, hh, ww = np.meshgrid(t_index, np.arange(h), np.arange(w), indexing="ij")
    return np.stack([tt.ravel(), hh.ravel(), ww.ravel()]).astype(np.int64) + start


def _run_end(tokens: Sequence[int], i: int, token: int) -> int:
    j = i
    while j < len(tokens) and tokens[j] == token:
        j += 1
    return j


def sequence_positions(
    tokens: Sequence[int],
    spec: RopeSpec,
    *,
    video_grids: Iterator[Sequence[int]],
    second_per_grid: Iterator[float],
    audio_lengths: Iterator[int] | None = None,
    use_audio_in_video: bool = False,
) -> np.ndarray:
    """``(3, len(tokens))`` reference positions of one unpadded token sequence.

    ``video_grids`` / ``second_per_grid`` / ``audio_lengths`` (mel frames per audio) are consumed
    in the order their blocks appear (shared iterators let a batch be walked row after row).
    Raises ``ValueError`` when a block's token count does not match its grid or audio length.
    """
    n = len(tokens)
    out = np.zeros((3, n), dtype=np.int64)
    nxt = 0  # the position the next text token gets
    i = 0
    interleave = spec.omni and use_audio_in_video
    while i < n:
        tok = tokens[i]
        if tok == spec.image_token_id:
            raise ValueError("MRoPE positions: image inputs are not supported by ravst (video only)")
        if tok == spec.video_token_id and not interleave:
            j = _run_end(tokens, i, tok)
            block = _video_block(next(video_grids), float(next(second_per_grid)), spec, nxt)
            if block.shape[1] != j - i:
                raise ValueError(f"video block of {j - i} tokens at {i} does not match its grid ({block.shape[1]})")
            out[:, i:j] = block
            nxt = int(block.max()) + 1
            i = j
        elif spec.omni and tok == spec.audio_token_id and not interleave:
            j = _run_end(tokens, i, tok)
            if audio_lengths is None:
                raise ValueError("audio tokens in the prompt but no audio feature lengths")
            count = audio_token_count(next(audio_lengths))
            if count != j - i:
                raise ValueError(f"audio block of {j - i} tokens at {i} does not match its length ({count})")
            out[:, i:j] = np.arange(nxt, nxt + count)
            nxt += count
            i = j
        elif interleave and tok == spec.audio_start_token_id and i > 0 and tokens[i - 1] == spec.vision_start_token_id:
            i, nxt = _interleaved_block(tokens, i, spec, out, video_grids, second_per_grid, audio_lengths)
        else:
            out[:, i] = nxt
            nxt += 1
            i += 1
    return out


def _interleaved_block(tokens: Sequence[int], i: int, spec: RopeSpec, out: np.ndarray,
                       video_grids: Iterator[Sequence[int]], second_per_grid: Iterator[float],
                       audio_lengths: Iterator[int] | None) -> tuple[int, int]:
    """Omni audio-in-video block starting at ``<audio_bos>`` (index ``i``); fills ``out`` up to and
    including ``<vision_eos>``; returns (next index, next text position)."""
    if audio_lengths is None:
        raise ValueError("use_audio_in_video: no audio feature lengths")
    bos = int(out[0, i - 1])
    out[:, i] = bos  # <audio_bos> shares <vision_bos>'s position
    base = bos + 1
    video = _video_block(next(video_grids), float(next(second_per_grid)), spec, base)
    n_audio = audio_token_count(next(audio_lengths))
    v = a = 0
    j = i + 1
    while j < len(tokens) and tokens[j] in (spec.video_token_id, spec.audio_token_id):
        if tokens[j] == spec.video_token_id:
            if v >= video.shape[1]:
                raise ValueError(f"interleaved block at {i}: more video tokens than its grid ({video.shape[1]})")
            out[:, j] = video[:, v]
            v += 1
        else:
            out[:, j] = base + a
            a += 1
        j += 1
    if v != video.shape[1] or a != n_audio:
        raise ValueError(f"interleaved block at {i}: {v} video / {a} audio tokens, expected "
                         f"{video.shape[1]} / {n_audio}")
    if j + 1 >= len(tokens) or tokens[j] != spec.audio_end_token_id or tokens[j + 1] != spec.vision_end_token_id:
        raise ValueError(f"interleaved block at {i}: not closed by <audio_eos><vision_eos>")
    last = j - 1  # the block's last chunk: the final run of one token kind
    first = last
    while first - 1 > i and tokens[first - 1] == tokens[last]:
        first -= 1
    eos = int(out[:, first:j].max()) + 1 if j > i + 1 else bos + 1
    out[:, j] = eos
    out[:, j + 1] = eos
    return j + 2, eos + 1


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    return list(value)


def position_ids_for(
    spec: RopeSpec,
    input_ids: Any,
    attention_mask: Any = None,
    *,
    video_grid_thw: Any = None,
    second_per_grid: Any = None,
    feature_attention_mask: Any = None,
    audio_feature_lengths: Any = None,
    use_audio_in_video: bool = False,
) -> Any:
    """``(3, B, L)`` long tensor of reference positions for a padded batch (padding gets 0).

    ``second_per_grid``: ``second_per_grid_ts`` (VL) or ``video_second_per_grid`` (Omni), one per
    video; audio lengths come from ``feature_attention_mask.sum(-1)`` or ``audio_feature_lengths``.
    """
    import torch

    ids = torch.as_tensor(input_ids)
    if ids.ndim != 2:
        raise ValueError(f"input_ids must be (batch, length), got shape {tuple(ids.shape)}")
    mask = torch.ones_like(ids, dtype=torch.bool) if attention_mask is None else torch.as_tensor(attention_mask).bool()
    grids = [tuple(int(x) for x in g) for g in _as_list(video_grid_thw)]
    seconds = [float(s) for s in _as_list(second_per_grid)]
    if len(seconds) != len(grids):
        if seconds or grids:
            raise ValueError(f"{len(grids)} video grids but {len(seconds)} second-per-grid values")
    if feature_attention_mask is not None:
        lengths = [int(x) for x in _as_list(torch.as_tensor(feature_attention_mask).sum(-1))]
    else:
        lengths = [int(x) for x in _as_list(audio_feature_lengths)]
    grid_it, sec_it, len_it = iter(grids), iter(seconds), iter(lengths)
    out = torch.zeros((3, ids.shape[0], ids.shape[1]), dtype=torch.long)
    try:
        for b in range(ids.shape[0]):
            keep = mask[b].cpu()
            tokens = ids[b].cpu()[keep].tolist()
            pos = sequence_positions(tokens, spec, video_grids=grid_it, second_per_grid=sec_it,
                                     audio_lengths=len_it, use_audio_in_video=use_audio_in_video)
            out[:, b, keep] = torch.from_numpy(pos)
    except StopIteration:
        raise ValueError(f"the prompts hold more video/audio blocks than the {len(grids)} grids / "
                         f"{len(lengths)} audio lengths given") from None
    leftover = sum(1 for _ in grid_it)
    if leftover:
        raise ValueError(f"{leftover} video grid(s) left over: fewer video blocks in the prompts than videos")
    return out.to(ids.device)


def inputs_position_ids(spec: RopeSpec, inputs: Mapping[str, Any], *, use_audio_in_video: bool = False) -> Any:
    """:func:`position_ids_for` from a processor / model input mapping (``input_ids``,
    ``attention_mask``, ``video_grid_thw``, ``second_per_grid_ts`` or ``video_second_per_grid``,
    ``feature_attention_mask`` or ``audio_feature_lengths``)."""
    second = inputs.get("second_per_grid_ts")
    if second is None:
        second = inputs.get("video_second_per_grid")
    return position_ids_for(
        spec,
        inputs["input_ids"],
        inputs.get("attention_mask"),
        video_grid_thw=inputs.get("video_grid_thw"),
        second_per_grid=second,
        feature_attention_mask=inputs.get("feature_attention_mask"),
        audio_feature_lengths=inputs.get("audio_feature_lengths"),
        use_audio_in_video=use_audio_in_video,
    )


# ---------------------------------------------------------------------------- the model side
def _hf_model(model: Any) -> Any:
    """The transformers model under PEFT / accelerate wrappers."""
    inner = model
    for _ in range(4):
        if hasattr(inner, "get_base_model"):
            inner = inner.get_base_model()
        elif hasattr(inner, "module") and not hasattr(inner, "generate"):
            inner = inner.module
        else:
            break
    return inner


def _text_rotary(model: Any) -> Any:
    """The text decoder's rotary embedding module (the one that receives the 3-row positions)."""
    found = []
    for name, module in _hf_model(model).named_modules():
        if type(module).__name__.endswith("RotaryEmbedding") and not any(
            part in name for part in ("visual", "audio", "vision", "talker")
        ):
            found.append(module)
    if not found:
        raise PositionMismatchError(f"{type(model).__name__}: no text rotary embedding found; cannot check positions")
    return found[0]


@contextlib.contextmanager
def capture_rotary_positions(model: Any) -> Iterator[list[Any]]:
    """Within the block, every ``position_ids`` tensor the text rotary embedding receives is
    appended (detached, on CPU) to the yielded list: the positions the model really used."""
    seen: list[Any] = []

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        pos = kwargs.get("position_ids", args[1] if len(args) > 1 else None)
        if pos is not None:
            seen.append(pos.detach().cpu())

    handle = _text_rotary(model).register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def install_reference_positions(model: Any) -> RopeSpec:
    """Make ``model.generate`` start from the reference positions when it is not given any (e.g.
    TRL's generation): the instance's ``_prepare_position_ids_for_generation`` is replaced by one
    that computes them with :func:`position_ids_for`. Idempotent; returns the model's spec."""
    inner = _hf_model(model)
    spec = rope_spec(inner.config)
    if getattr(inner, "_ravst_reference_positions", False):
        return spec
    original = getattr(inner, "_prepare_position_ids_for_generation", None)
    if original is None:
        raise PositionMismatchError(f"{type(inner).__name__} has no _prepare_position_ids_for_generation: this "
                                    "transformers version is not supported by ravst's position check")

    def prepare(inputs_tensor: Any, model_kwargs: dict[str, Any]) -> Any:
        import torch

        ids = model_kwargs.get("input_ids", inputs_tensor)
        if not (isinstance(ids, torch.Tensor) and ids.ndim == 2 and model_kwargs.get("video_grid_thw") is not None):
            return original(inputs_tensor, model_kwargs)
        kw = dict(model_kwargs)
        kw["input_ids"] = ids
        pos = inputs_position_ids(spec, kw, use_audio_in_video=bool(model_kwargs.get("use_audio_in_video")))
        mask = model_kwargs.get("attention_mask")
        text = (mask.long().cumsum(-1) - 1).clamp(min=0) if mask is not None else torch.arange(ids.shape[1]).expand(
            ids.shape[0], -1)
        return torch.cat([text[None].to(pos.device), pos], dim=0)  # [text row, t, h, w] like the model's own

    inner._prepare_position_ids_for_generation = prepare
    inner._ravst_reference_positions = True
    return spec


@dataclass(frozen=True)
class PositionCheck:
    """Outcome of :func:`verify_model_positions` (all on a tiny synthetic prompt)."""

    installed_rule_matches: bool  # the installed transformers computes the reference positions itself
    first_text_after_video_installed: int | None
    first_text_after_video_reference: int
    verified_paths: tuple[str, ...]


def _synthetic_inputs(model: Any, spec: RopeSpec, *, interleave: bool) -> dict[str, Any]:
    """A tiny prompt: text, a video of 2 grid steps of 2x2 merged tokens (spaced 2 s), text,
    a second video (VL) and text; for Omni with ``interleave`` the video carries 4 s of audio."""
    import torch

    config = _hf_model(model).config
    thinker = getattr(config, "thinker_config", config)
    vision = thinker.vision_config
    patch = int(getattr(vision, "patch_size", 14))
    tps = int(getattr(vision, "temporal_patch_size", 2))
    channels = int(getattr(vision, "in_channels", getattr(vision, "in_chans", 3)))
    m = spec.spatial_merge_size
    grid = (2, 2 * m, 2 * m)
    n_video = 2 * 2 * 2
    special = {spec.video_token_id, spec.image_token_id, spec.vision_start_token_id, spec.vision_end_token_id,
               spec.audio_token_id, spec.audio_start_token_id, spec.audio_end_token_id}
    text = [t for t in range(100, 200) if t not in special][:3]  # ordinary text tokens in any Qwen vocabulary
    ids: list[int] = [*text, spec.vision_start_token_id]
    grids = [grid]
    extra: dict[str, Any] = {}
    if interleave:
        feat = 400  # 4 s of mel frames -> 100 audio tokens: chunk 0 = 50, chunk 1 = 50
        n_audio = audio_token_count(feat)
        ids += [spec.audio_start_token_id]
        ids += [spec.video_token_id] * 4 + [spec.audio_token_id] * 50 + [spec.video_token_id] * 4
        ids += [spec.audio_token_id] * (n_audio - 50)
        ids += [spec.audio_end_token_id, spec.vision_end_token_id, *text]
        n_mel = int(getattr(thinker.audio_config, "num_mel_bins", 128))
        extra = {"input_features": torch.randn(1, n_mel, feat),
                 "feature_attention_mask": torch.ones(1, feat, dtype=torch.long), "use_audio_in_video": True}
    else:
        ids += [spec.video_token_id] * n_video + [spec.vision_end_token_id] + text
        if not spec.omni:  # a second video, to check the offset carried from block to block
            ids += [spec.vision_start_token_id] + [spec.video_token_id] * n_video + [spec.vision_end_token_id] + text
            grids.append(grid)
    n_patches = sum(g[0] * g[1] * g[2] for g in grids)
    pixel = torch.rand(n_patches, channels * tps * patch * patch)
    seconds = torch.tensor([2.0] * len(grids))
    inputs = {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "pixel_values_videos": pixel,
        "video_grid_thw": torch.tensor(grids),
        ("video_second_per_grid" if spec.omni else "second_per_grid_ts"): seconds,
        **extra,
    }
    if not spec.omni:
        inputs["mm_token_type_ids"] = (inputs["input_ids"] == spec.video_token_id).long() * 2
    return inputs


def _installed_positions(model: Any, inputs: Mapping[str, Any], spec: RopeSpec) -> Any:
    """The positions the installed transformers computes on its own (``get_rope_index``), or None."""
    inner = _hf_model(model)
    holder = getattr(inner, "model", inner)
    fn = getattr(holder, "get_rope_index", None) or getattr(inner, "get_rope_index", None)
    if fn is None:
        return None
    try:
        if spec.omni:
            fm = inputs.get("feature_attention_mask")
            pos, _ = fn(inputs["input_ids"], None, inputs["video_grid_thw"], inputs["attention_mask"],
                        bool(inputs.get("use_audio_in_video")), fm.sum(-1) if fm is not None else None,
                        inputs["video_second_per_grid"])
        else:
            pos, _ = fn(inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
                        video_grid_thw=inputs["video_grid_thw"], second_per_grid_ts=inputs["second_per_grid_ts"],
                        attention_mask=inputs["attention_mask"])
    except (TypeError, ValueError, RuntimeError, IndexError) as exc:
        log.warning("the installed transformers' get_rope_index could not be called (%s): not compared", exc)
        return None
    return pos


def _on(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    param = next(_hf_model(model).parameters())
    out = {}
    for k, v in inputs.items():
        if hasattr(v, "to"):
            v = v.to(param.device)
            if v.is_floating_point():
                v = v.to(param.dtype)
        out[k] = v
    return out


def verify_model_positions(model: Any) -> PositionCheck:
    """Start-up check: on a tiny synthetic prompt (text, video(s), text; Omni: also the
    interleaved audio-in-video layout), compare the installed stack's own positions with the
    reference rule, then run the three paths ravst uses and check, at the text rotary embedding,
    that the positions the model really receives are the reference ones:

    - ``generate`` with explicit ``position_ids`` (``ravst infer``),
    - ``generate`` without them after :func:`install_reference_positions` (TRL's GRPO rollouts),
    - a forward pass with explicit ``position_ids`` (GRPO log-prob passes, SFT).

    A mismatch on the installed rule alone is corrected (WARNING); a mismatch on any of the
    paths raises :class:`PositionMismatchError` (the CLIs exit with status 2).
    """
    import torch

    spec = install_reference_positions(model)
    inner = _hf_model(model)
    layouts = [False, True] if spec.omni else [False]
    matches = True
    first_installed: int | None = None
    first_reference = -1
    paths: list[str] = []
    was_training = inner.training
    inner.eval()
    try:
        for interleave in layouts:
            inputs = _synthetic_inputs(model, spec, interleave=interleave)
            ref = inputs_position_ids(spec, inputs, use_audio_in_video=interleave)
            ids = inputs["input_ids"][0].tolist()
            after = max(k for k, t in enumerate(ids) if t == spec.vision_end_token_id) + 1
            first_reference = int(ref[0, 0, after])
            installed = _installed_positions(model, inputs, spec)
            if installed is None or not torch.equal(installed.cpu().long(), ref):
                matches = False
                if installed is not None:
                    first_installed = int(installed[0, 0, after])
            dev = _on(model, inputs)
            n = ref.shape[-1]
            # min_new_tokens: a trained model may end its answer at once (greedy end-of-turn), and the
            # check needs one decoding step after the prefill
            gen_kw = {"max_new_tokens": 2, "min_new_tokens": 2, "do_sample": False, "pad_token_id": 0}
            for label, extra in (("generate(position_ids)", {"position_ids": ref.to(dev["input_ids"].device)}),
                                 ("generate()", {})):
                with torch.no_grad(), capture_rotary_positions(model) as seen:
                    inner.generate(**dev, **extra, **gen_kw)
                _expect(seen, ref, n, label, interleave)
                paths.append(label + (" interleaved" if interleave else ""))
            with torch.no_grad(), capture_rotary_positions(model) as seen:
                inner(**dev, position_ids=ref.to(dev["input_ids"].device))
            _expect(seen[:1], ref, n, "forward(position_ids)", interleave, decode=False)
            paths.append("forward(position_ids)" + (" interleaved" if interleave else ""))
    finally:
        inner.train(was_training)
    if not matches:
        import transformers

        log.warning("transformers %s computes other MRoPE positions than the reference rule (first text token after "
                    "a video at %s instead of %d): ravst passes the reference positions itself (verified: %s)",
                    transformers.__version__, first_installed, first_reference, ", ".join(paths))
    return PositionCheck(matches, first_installed, first_reference, tuple(paths))


def _expect(seen: list[Any], ref: Any, n: int, label: str, interleave: bool, *, decode: bool = True) -> None:
    import torch

    what = f"{label}{' (audio in video)' if interleave else ''}"
    if not seen:
        raise PositionMismatchError(f"{what}: the text rotary embedding received no positions")
    prefill = seen[0]
    if prefill.ndim == 3 and prefill.shape[0] == 4:
        prefill = prefill[1:]
    if tuple(prefill.shape) != tuple(ref.shape) or not torch.equal(prefill.long(), ref):
        raise PositionMismatchError(
            f"{what}: the model received other positions than the reference rule "
            f"(first differing column {_first_diff(prefill, ref)}); refusing to run")
    if decode:
        if len(seen) < 2:
            raise PositionMismatchError(f"{what}: no decoding step observed")
        step = seen[1]
        if step.ndim == 3 and step.shape[0] == 4:
            step = step[1:]
        want = int(ref.max()) + 1
        if step.shape[-1] != 1 or not bool((step.long() == want).all()):
            raise PositionMismatchError(f"{what}: first generated token at {step.reshape(-1).tolist()}, "
                                        f"expected {want} on all rows; refusing to run")
    del n


def _first_diff(a: Any, b: Any) -> str:
    try:
        diff = (a.long() != b).any(0).any(0).nonzero()
        return str(int(diff[0])) if len(diff) else "shape"
    except RuntimeError:
        return f"shapes {tuple(a.shape)} vs {tuple(b.shape)}"
