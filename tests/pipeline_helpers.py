"""Tiny random GroundingDINO and OWLv2 detectors built from configs, with tokenizers made on
the spot (no download). Used by the annotate tests."""

from __future__ import annotations

from pathlib import Path

WORDS = ["person", "people", "man", "woman", "dog", "cat", "car", "a", "photo", "of", "guitar", "baby", "."]


def _bert_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", cls_token="[CLS]",
                             pad_token="[PAD]", mask_token="[MASK]")


def build_tiny_grounding_dino(out_dir: Path) -> Path:
    import torch
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    torch.manual_seed(0)
    tokenizer = _bert_tokenizer()
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
        tokenizer=tokenizer)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                                   num_heads=[1, 1, 1, 1], window_size=2, out_indices=[2, 3, 4]),
        text_config=BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=16, max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10, num_feature_levels=3, encoder_n_points=1,
        decoder_n_points=1, max_text_len=32)
    GroundingDinoForObjectDetection(config).save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_owlv2(out_dir: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import (
        CLIPTokenizerFast,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )

    torch.manual_seed(0)
    # OWL treats a query whose first id is 0 as padding: the special tokens go last
    tokens: list[str] = []
    merges: list[tuple[str, str]] = []
    for word in WORDS:  # merges that build each word left to right: p+h, ph+o, ..., phot+o</w>
        pieces = [*word[:-1], word[-1] + "</w>"]
        tokens.extend(pieces)
        current = pieces[0]
        for piece in pieces[1:]:
            merges.append((current, piece))
            current += piece
            tokens.append(current)
    vocab = {w: i for i, w in enumerate([*dict.fromkeys(tokens), "<|startoftext|>", "<|endoftext|>"])}
    merges = list(dict.fromkeys(merges))
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    tok = Tokenizer(models.BPE(vocab, merges, end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tokenizer = CLIPTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=16)
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}),
                               tokenizer=tokenizer)
    config = Owlv2Config(
        text_config={"vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": bos,
                     "eos_token_id": eos, "pad_token_id": eos},
        vision_config={"image_size": 64, "patch_size": 16, "hidden_size": 16, "intermediate_size": 16,
                       "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=16)
    Owlv2ForObjectDetection(config).save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def write_clip(path: Path, *, seconds: float, audio: bool, fps: int = 10) -> Path:
    """A small real video file written with PyAV (moving square; optional 440 Hz tone)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("aac", rate=16000) if audio else None
        for i in range(int(seconds * fps)):
            img = np.zeros((48, 64, 3), np.uint8)
            img[10:20, i % 50 : i % 50 + 10] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            n = int(seconds * 16000)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)
            for k in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="flt", layout="mono")
                frame.sample_rate = 16000
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def analyzed_record(video_id: str, duration_s: float, events: list[tuple[float, float, list[tuple[str, bool]]]]) -> dict:
    """An analyze-stage record (what annotate reads)."""
    return {"video_id": video_id, "duration_s": duration_s, "subset": "test", "events": [
        {"index": i, "label": objs[0][0], "labels": [objs[0][0]], "start_s": s, "end_s": e, "caption": None,
         "source_indices": [i], "objects": [{"name": n, "audible": a} for n, a in objs]}
        for i, (s, e, objs) in enumerate(events)]}


def build_tiny_sam2_video(out_dir: Path, size: int = 128) -> Path:
    """A tiny random SAM2 video model (transformers ``Sam2VideoModel``) and its processor."""
    import torch
    from transformers import (
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
    )

    torch.manual_seed(0)
    s = size
    config = Sam2VideoConfig(
        vision_config={
            "backbone_config": {"model_type": "sam2_hiera_det_model", "hidden_size": 8, "image_size": [s, s],
                                "blocks_per_stage": [1, 1, 2, 1], "embed_dim_per_stage": [8, 16, 32, 64],
                                "num_attention_heads_per_stage": [1, 1, 1, 1], "window_size_per_stage": [4, 4, 4, 4],
                                "global_attention_blocks": [3], "num_attention_heads": 1,
                                "window_positional_embedding_background_size": [2, 2]},
            "backbone_channel_list": [64, 32, 16, 8],
            "backbone_feature_sizes": [[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
            "fpn_hidden_size": 128},
        prompt_encoder_config={"hidden_size": 128, "image_size": s, "patch_size": 16},
        mask_decoder_config={"hidden_size": 128, "mlp_dim": 32, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
        image_size=s, memory_attention_hidden_size=128, memory_attention_num_layers=1,
        memory_encoder_hidden_size=128, memory_encoder_output_channels=64,  # 64: fixed inside transformers
        mask_downsampler_embed_dim=128, memory_attention_feed_forward_hidden_size=32,
        memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=32, memory_attention_rope_feat_sizes=[s // 16, s // 16])
    Sam2VideoModel(config).save_pretrained(out_dir)
    Sam2VideoProcessor(image_processor=Sam2ImageProcessor(size={"height": s, "width": s}),
                       video_processor=Sam2VideoVideoProcessor(size={"height": s, "width": s})).save_pretrained(out_dir)
    return out_dir


def official_event_spans(official: list[dict]) -> dict[str, list[tuple[float, float, bool]]]:
    """Per official video, the span of every event: ``(start, end, exact)``. Exact spans come
    from a spatial question ("between S and E", up to 5 decimals), else the 1-decimal
    ``<when>`` of the temporal / spatio-temporal answer."""
    import re

    between = re.compile(r"between ([\d.]+) and ([\d.]+)")
    when = re.compile(r"<when>\[([\d.]+), ([\d.]+)\]")
    out: dict[str, list[tuple[float, float, bool]]] = {}
    for video in official:
        spans = []
        for event in video["annotation"]:
            exact, rounded = None, None
            for key, qas in event.items():
                if key == "event_num":
                    continue
                for qa in qas:
                    m = between.search(qa["Q"])
                    if m:
                        exact = (float(m[1]), float(m[2]), True)
                    m = when.search(qa["A"])
                    if m and rounded is None:
                        rounded = (float(m[1]), float(m[2]), False)
            span = exact or rounded
            if span is not None:
                spans.append(span)
        out[video["video_name"]] = spans
    return out


def span_agrees(official: tuple[float, float, bool], ours: tuple[float, float]) -> bool:
    """Our event span equals the official one (exactly to 1e-4, or after rounding to 1 decimal)."""
    s, e, exact = official
    if exact:
        return abs(ours[0] - s) < 1e-4 and abs(ours[1] - e) < 1e-4
    return round(ours[0], 1) == s and round(ours[1], 1) == e


class ChatServer:
    """A small OpenAI-compatible server on 127.0.0.1 for the analyzer tests.

    ``POST /v1/chat/completions`` answers in the Box 1 format from what it received: the subject
    is ``frames{N}`` (N = image parts of the request; ``caption`` when there are none) and the
    caption's first word, both "visible & audible". ``GET /v1/models`` answers 200. ``fail_always``
    makes every chat request a 500. Counts requests and the most requests in flight."""

    def __init__(self, *, fail_always: bool = False, delay_s: float = 0.05) -> None:
        import json
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_always = fail_always
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "tiny"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                time.sleep(delay_s)
                with outer.lock:
                    outer.in_flight -= 1
                if outer.fail_always:
                    self._send(500, {"error": "down"})
                    return
                user = body["messages"][-1]["content"]
                parts = user if isinstance(user, list) else [{"type": "text", "text": user}]
                images = sum(1 for p in parts if p["type"] == "image_url")
                text = " ".join(p["text"] for p in parts if p["type"] == "text")
                word = text.split("Caption:", 1)[1].split()[0] if "Caption:" in text else "thing"
                answer = (f"Key Subjects:\nframes{images} - visible & audible\n{word} - visible & audible\n"
                          "Subject Number: 2")
                self._send(200, {"choices": [{"message": {"role": "assistant", "content": answer}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_events(path: Path, database: dict) -> Path:
    import json

    path.write_text(json.dumps({"version": "test", "database": database}), encoding="utf-8")
    return path


def truncate_faststart(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """``src`` remuxed with its index first (``movflags=faststart``) and cut at ``fraction`` of its
    size: a half-downloaded MP4 whose header still claims the full duration."""
    import av

    full = dst.with_name(dst.stem + "_full.mp4")
    with av.open(str(src)) as inp, av.open(str(full), "w", options={"movflags": "faststart"}) as out:
        streams = {}
        for s in inp.streams:
            if s.type in ("video", "audio"):
                streams[s.index] = out.add_stream_from_template(s)
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    data = full.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    full.unlink()
    return dst
