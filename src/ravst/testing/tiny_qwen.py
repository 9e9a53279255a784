"""Tiny random Qwen2.5-VL and Qwen2.5-Omni-thinker models + processors, built offline.

The models have the real architectures (``Qwen2_5_VLForConditionalGeneration``,
``Qwen2_5OmniThinkerForConditionalGeneration``) with a few hundred thousand random weights, a
byte-level BPE tokenizer trained on the fly with ``tokenizers`` (Qwen's special tokens and chat
templates), and the real processor classes. They are saved with ``save_pretrained`` so that
``AutoProcessor.from_pretrained(path)`` and ``<ModelClass>.from_pretrained(path)`` reload them with
no hub access. Use them to test any code path that feeds a Qwen model (inference, GRPO).

Typical use::

    path = build_tiny_qwen_vl(tmp_path / "vl")
    processor = AutoProcessor.from_pretrained(path)
    model = load_tiny_model(path)
    bad = multimodal_token_ids(processor)   # suppress these while sampling from a random model

Pixel budgets are tiny (56x56 .. 112x112 px per frame) so that a video costs a handful of tokens.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = [
    "MULTIMODAL_TOKENS",
    "OMNI_CHAT_TEMPLATE",
    "QWEN_SPECIAL_TOKENS",
    "TINY_MAX_PIXELS",
    "TINY_MIN_PIXELS",
    "VL_CHAT_TEMPLATE",
    "build_tiny_qwen_omni",
    "build_tiny_qwen_omni_full",
    "build_tiny_qwen_vl",
    "build_tokenizer",
    "load_tiny_model",
    "multimodal_token_ids",
]

logger = logging.getLogger(__name__)

TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 112 * 112

# Qwen2.5-VL's chat template (its image/video placeholders are expanded by the processor).
VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2.5-Omni's chat template (audio, image and video placeholders).
OMNI_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Special tokens of the Qwen2.5 vocabularies (VL and Omni names); the first is the pad token.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|AUDIO|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
)

# Tokens that stand for (or delimit) image / video / audio content: a model must never emit them.
MULTIMODAL_TOKENS = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|AUDIO|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
)

_OMNI_NAMED_TOKENS = {
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_token": "<|AUDIO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}

# Text the tokenizer is trained on: the R-AVST prompt and answer layout, so prompts stay short.
_CORPUS = (
    "You are an expert in audio-visual video grounding. For each question, output within "
    "<answer></answer>: - <object>: grounded object(s), e.g. 'man', 'dog', separated by commas - "
    "<when>: [start, end] in seconds, 1 decimal - <where>for each object by each second within the "
    "object appearing duration: timestamp: [x1, y1, x2, y2] Only include tags <object>, <when>and "
    "<where>. No extra text.",
    "<answer> <when>[10.0,20.5]</when> <object>dog </object> <where> 10.0: [100,200,300,400] "
    "11.0: [109,280,320,432] </where> <object>cat </object> <where> 12.5: [50,60,150,160] </where> </answer>",
    "<think> The dog barks at 3.5 seconds while the guitar plays. </think>",
    "When does the man speaking happen in the video? Where is the sounding object located between "
    "2.0 and 5.0 seconds? Which object is silent? Give the time span and the boxes.",
    "person man woman car piano violin cat bird drum trumpet cello guitar ukulele baby boat engine",
    "0 1 2 3 4 5 6 7 8 9 10 20 30 40 50 60 100 200 300 [0.0, 0.0, 0.0, 0.0] frame at second",
    "system user assistant video image audio left right top bottom helpful",
)


def build_tokenizer(*, named_tokens: dict[str, str] | None = None, vocab_size: int = 600) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` with Qwen's special tokens, trained on the fly.

    ``named_tokens`` become tokenizer attributes (``tokenizer.image_token`` ...), which the Omni
    processor reads. Left padding, eos ``<|im_end|>``, pad ``<|endoftext|>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(_CORPUS) * 20, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
        model_max_length=32768,
        padding_side="left",
        **(named_tokens or {}),
    )


def _mrope_section(head_dim: int) -> list[int]:
    """Temporal / height / width rotary sections; they must sum to ``head_dim // 2``.

    >>> _mrope_section(16), _mrope_section(32), _mrope_section(128)
    ([2, 3, 3], [4, 6, 6], [16, 24, 24])
    """
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _text_config(tok: Any, hidden: int) -> dict[str, Any]:
    if hidden % 4 or (hidden // 4) % 2:
        raise ValueError(f"hidden_size must be a multiple of 8 (4 heads, even head_dim), got {hidden}")
    return {
        "vocab_size": len(tok),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope_section(hidden // 4)},
        "bos_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


def _video_size() -> dict[str, int]:
    return {"shortest_edge": TINY_MIN_PIXELS, "longest_edge": TINY_MAX_PIXELS}


def _finish(model: Any, processor: Any, tok: Any, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = tok.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    logger.info("saved tiny %s (%.2f M params) to %s", type(model).__name__, n / 1e6, out)
    return out


def build_tiny_qwen_vl(out_dir: str | Path, *, seed: int = 0, hidden_size: int = 64) -> Path:
    """Build a tiny random Qwen2.5-VL + ``Qwen2_5_VLProcessor`` and save both to ``out_dir``."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    torch.manual_seed(seed)
    tok = build_tokenizer(named_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    ids = tok.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=_text_config(tok, hidden_size),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "out_hidden_size": hidden_size,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=_video_size(), patch_size=14, merge_size=2, temporal_patch_size=2),
        video_processor=Qwen2VLVideoProcessor(
            size=_video_size(), patch_size=14, merge_size=2, temporal_patch_size=2, fps=2.0, do_sample_frames=False
        ),
        tokenizer=tok,
        chat_template=VL_CHAT_TEMPLATE,
    )
    return _finish(model, processor, tok, out_dir)


def build_tiny_qwen_omni(out_dir: str | Path, *, seed: int = 0, hidden_size: int = 64) -> Path:
    """Build a tiny random Qwen2.5-Omni thinker + ``Qwen2_5OmniProcessor`` and save both."""
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    torch.manual_seed(seed)
    tok = build_tokenizer(named_tokens=_OMNI_NAMED_TOKENS)
    model = Qwen2_5OmniThinkerForConditionalGeneration(_omni_thinker_config(tok, hidden_size))
    return _finish(model, _omni_processor(tok), tok, out_dir)


def build_tiny_qwen_omni_full(out_dir: str | Path, *, seed: int = 0, hidden_size: int = 64) -> Path:
    """Build a tiny random FULL Qwen2.5-Omni checkpoint in the hub layout: config
    ``Qwen2_5OmniConfig`` with ``architectures: ["Qwen2_5OmniModel"]``, ``thinker.*``, ``talker.*``
    and ``token2wav.*`` weights (a tiny talker and vocoder), and the Omni processor."""
    import json

    import torch
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    torch.manual_seed(seed)
    tok = build_tokenizer(named_tokens=_OMNI_NAMED_TOKENS)
    thinker = _omni_thinker_config(tok, hidden_size)
    ids = tok.convert_tokens_to_ids
    talker = {
        "vocab_size": 64, "embedding_size": hidden_size, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
        "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope_section(16)},
        "tts_codec_start_token_id": 60, "tts_codec_end_token_id": 61, "tts_codec_pad_token_id": 62,
        "tts_codec_mask_token_id": 63, "tts_text_start_token_id": 1, "tts_text_end_token_id": 2,
        "tts_text_pad_token_id": 0,
        "audio_token_index": ids("<|AUDIO|>"), "image_token_index": ids("<|IMAGE|>"),
        "video_token_index": ids("<|VIDEO|>"), "vision_start_token_id": ids("<|vision_bos|>"),
        "vision_end_token_id": ids("<|vision_eos|>"), "audio_start_token_id": ids("<|audio_bos|>"),
        "audio_end_token_id": ids("<|audio_eos|>"),
    }
    token2wav = {
        "dit_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 16,
                       "ff_mult": 1, "emb_dim": 16, "num_embeds": 64, "enc_emb_dim": 16, "enc_dim": 16,
                       "enc_channels": [16, 16, 16, 16, 48], "enc_attention_channels": 8, "enc_se_channels": 8,
                       "look_ahead_layers": [0], "look_backward_layers": [0], "block_size": 4},
        "bigvgan_config": {"upsample_initial_channel": 16, "upsample_rates": [2, 2], "upsample_kernel_sizes": [4, 4],
                           "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]]},
    }
    config = Qwen2_5OmniConfig(thinker_config=thinker.to_dict(), talker_config=talker, token2wav_config=token2wav,
                               enable_audio_output=True)
    model = Qwen2_5OmniForConditionalGeneration(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.thinker.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    _omni_processor(tok).save_pretrained(out)
    # the hub checkpoint's speaker prompts for the talker (Qwen2_5OmniForConditionalGeneration needs the file)
    torch.save({"Chelsie": {"bos_token": 60, "cond": torch.zeros(1, 8)}}, out / "spk_dict.pt")
    raw = json.loads((out / "config.json").read_text(encoding="utf-8"))
    raw["architectures"] = ["Qwen2_5OmniModel"]  # as on the hub (Qwen/Qwen2.5-Omni-7B)
    (out / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    logger.info("saved tiny full Qwen2.5-Omni (%.2f M params) to %s", sum(p.numel() for p in model.parameters()) / 1e6,
                out)
    return out


def _omni_processor(tok: Any) -> Any:
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    return Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(size=_video_size()),
        video_processor=Qwen2VLVideoProcessor(size=_video_size(), do_sample_frames=False),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, chunk_length=30),
        tokenizer=tok,
        chat_template=OMNI_CHAT_TEMPLATE,
    )


def _omni_thinker_config(tok: Any, hidden_size: int) -> Any:
    from transformers import Qwen2_5OmniThinkerConfig

    ids = tok.convert_tokens_to_ids
    return Qwen2_5OmniThinkerConfig(
        text_config=_text_config(tok, hidden_size),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": hidden_size,
            "fullatt_block_indexes": [1],
            "window_size": 112,
        },
        audio_config={
            "num_mel_bins": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "output_dim": hidden_size,
            "n_window": 100,
            "max_source_positions": 1500,
        },
        audio_token_index=ids("<|AUDIO|>"),
        image_token_index=ids("<|IMAGE|>"),
        video_token_index=ids("<|VIDEO|>"),
        audio_start_token_id=ids("<|audio_bos|>"),
        audio_end_token_id=ids("<|audio_eos|>"),
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        user_token_id=ids("<|im_start|>"),
        # not declared by the thinker config class, but read by its rope-index code
        **{"vision_start_token_id": ids("<|vision_bos|>"), "vision_end_token_id": ids("<|vision_eos|>")},
    )


def load_tiny_model(path: str | Path, *, dtype: Any = None) -> Any:
    """Reload a model saved by the builders above (float32 by default), in eval mode."""
    import torch
    from transformers import (
        AutoConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5OmniThinkerForConditionalGeneration,
    )

    config = AutoConfig.from_pretrained(path)
    if config.model_type == "qwen2_5_omni":  # full checkpoint: its thinker, no talker
        from transformers import Qwen2_5OmniForConditionalGeneration

        full = Qwen2_5OmniForConditionalGeneration.from_pretrained(path, enable_audio_output=False,
                                                                   dtype=dtype or torch.float32)
        return full.thinker.eval()
    cls = (
        Qwen2_5OmniThinkerForConditionalGeneration
        if "omni" in config.model_type
        else Qwen2_5_VLForConditionalGeneration
    )
    return cls.from_pretrained(path, dtype=dtype or torch.float32).eval()


def multimodal_token_ids(processor_or_tokenizer: Any) -> list[int]:
    """Sorted ids of every multimodal special token the tokenizer knows (image / video / audio
    placeholders and their delimiters, and Qwen's box / object-reference markers).

    Pass them as ``suppress_tokens`` (or ``bad_words_ids=[[i] for i in ids]``) when sampling: a
    random or early policy otherwise emits them, and re-scoring such a completion crashes.
    Works with a processor or a bare tokenizer, for the tiny models and the real checkpoints.
    """
    tok = getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)
    vocab = tok.get_vocab()
    names = set(MULTIMODAL_TOKENS)
    for attr in (
        "image_token",
        "video_token",
        "audio_token",
        "vision_bos_token",
        "vision_eos_token",
        "audio_bos_token",
        "audio_eos_token",
    ):
        for holder in (processor_or_tokenizer, tok):
            value = getattr(holder, attr, None)
            if isinstance(value, str):
                names.add(value)
    return sorted({vocab[name] for name in names if name in vocab})
