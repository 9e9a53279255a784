#!/usr/bin/env bash
# Checks for a lent GPU machine (CUDA). One section per area; each prints PASS / SKIP (with the
# reason) / FAIL, and the script exits non-zero when any section failed.
# Usage: bash scripts/gpu_check.sh [OUT_DIR]      (PY=... picks the interpreter; default .venv)
# Sections:
#   [inference-bf16]  tiny random Qwen2.5-VL and Qwen2.5-Omni thinker, bf16 on the GPU, through
#                     `ravst infer --backend transformers` on a real 60 s clip (Omni with its audio)
#   [inference-vllm]  the same tiny Qwen2.5-VL through `ravst infer --backend vllm` (when vllm imports)
#   [grpo-bf16]       AVST-Zero GRPO: 2 bf16 steps of a tiny random Qwen2.5-VL on the GPU, real clip
#   [grpo-vllm]       the same with TRL's colocated vLLM rollout (video sent to vLLM; when vllm imports)
#   [logprob-parity]  HF transformers vs vLLM on the SAME prompt and frames (tiny models, bf16), for
#                     Qwen2.5-VL and a FULL Qwen2.5-Omni checkpoint (audio in video): asserts vLLM's prompt
#                     token ids equal the HF processor's, and the per-token log-probs of vLLM's greedy
#                     completion, re-scored by HF with ravst's reference MRoPE positions, agree
#                     (max |diff| <= LOGP_TOL, default 0.05 nats); vllm >= 0.31.0 (version check)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${1:-${OUT:-out/gpu_check}}"
VIDEOS="${RAVST_VIDEOS:-../shared/data/videos}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
FAILED=0
section() { echo; echo "================ [$1] ================"; }
result() { # name rc
  if [ "$2" = 0 ]; then echo "[$1] PASS"; elif [ "$2" = 3 ]; then echo "[$1] SKIP"; else echo "[$1] FAIL (rc=$2)"; FAILED=1; fi
}

# ---------------------------------------------------------------- inference-bf16
section inference-bf16
"$PY" - "$OUT" "$VIDEOS" <<'PYEOF'
import json, sys, time
from pathlib import Path

import torch

out, videos = Path(sys.argv[1]), Path(sys.argv[2])
if not torch.cuda.is_available():
    print("SKIP: no CUDA device"); sys.exit(3)
clip = videos / "unav100_--HuBNHXu9I.mp4"
if not clip.is_file():
    print(f"SKIP: {clip} absent"); sys.exit(3)
from ravst.cli import main
from ravst.testing.tiny_qwen import build_tiny_qwen_omni, build_tiny_qwen_vl, load_tiny_model

qa = out / "qa.json"
qa.write_text(json.dumps([{"video_name": clip.stem, "duration": 60.0, "annotation": [{"event_num": 1,
    "AV Temporal Reasoning": [{"Q": "When is the moment man makes sound and is visible?",
                               "A": "<answer>\n<object>man</object>\n<when>[13.1, 26.2]</when>\n</answer>"}]}]}]))
print(torch.cuda.get_device_name(0), "torch", torch.__version__)
for kind, build in (("vl", build_tiny_qwen_vl), ("omni", build_tiny_qwen_omni)):
    path = build(out / f"tiny-{kind}", hidden_size=128)
    model = load_tiny_model(path, dtype=torch.bfloat16).cuda()
    assert next(model.parameters()).dtype == torch.bfloat16
    pred = out / f"pred-{kind}.jsonl"
    pred.unlink(missing_ok=True)
    t = time.perf_counter()
    rc = main(["infer", "--qa", str(qa), "--videos", str(videos), "--backend", "transformers", "--model", str(path),
               "--out", str(pred), "--dtype", "bfloat16", "--device", "cuda", "--fps", "1", "--max-frames", "60",
               "--max-pixels", "50176", "--max-new-tokens", "64"])
    rec = json.loads(pred.read_text().splitlines()[0])
    print(kind, "rc", rc, f"{time.perf_counter() - t:.1f}s", "error", rec.get("error"), "frames", len(rec["frame_times_s"]),
          "audio_s", rec.get("audio_s"), "new_tokens", rec.get("new_tokens"), "text", repr(rec["text"][:60]))
    assert rc == 0 and rec.get("error") is None and rec.get("new_tokens", 0) > 0
    if kind == "omni":
        assert abs(rec["audio_s"] - 60.0) < 0.2
print("peak GPU memory MB", torch.cuda.max_memory_allocated() / 2**20)
PYEOF
result inference-bf16 $?

# ---------------------------------------------------------------- inference-vllm
section inference-vllm
"$PY" - "$OUT" "$VIDEOS" <<'PYEOF'
import json, sys, time
from pathlib import Path

out, videos = Path(sys.argv[1]), Path(sys.argv[2])
try:
    import torch
    import vllm
except ImportError as exc:
    print(f"SKIP: vllm not importable ({exc}); install the 'vllm' extra"); sys.exit(3)
if not torch.cuda.is_available():
    print("SKIP: no CUDA device"); sys.exit(3)
from ravst.cli import main
from ravst.testing.tiny_qwen import build_tiny_qwen_vl

qa = out / "qa.json"
if not qa.is_file():
    print("SKIP: qa.json missing (inference-bf16 did not run)"); sys.exit(3)
path = out / "tiny-vl" if (out / "tiny-vl").is_dir() else build_tiny_qwen_vl(out / "tiny-vl", hidden_size=128)
pred = out / "pred-vllm.jsonl"
pred.unlink(missing_ok=True)
t = time.perf_counter()
rc = main(["infer", "--qa", str(qa), "--videos", str(videos), "--backend", "vllm", "--model", str(path),
           "--out", str(pred), "--fps", "1", "--max-frames", "16", "--max-pixels", "50176", "--max-new-tokens", "32"])
rec = json.loads(pred.read_text().splitlines()[0])
print("vllm", vllm.__version__, "rc", rc, f"{time.perf_counter() - t:.1f}s", "error", rec.get("error"),
      "new_tokens", rec.get("new_tokens"), "text", repr(rec["text"][:60]))
assert rc == 0 and rec.get("error") is None
PYEOF
result inference-vllm $?


# ---------------------------------------------------------------- logprob-parity (model inputs)
section logprob-parity
"$PY" - "$OUT" "$VIDEOS" <<'PYEOF'
import os, sys
from pathlib import Path

out, videos = Path(sys.argv[1]) / "parity", Path(sys.argv[2])
try:
    import torch
    import vllm
except ImportError as exc:
    print(f"SKIP: vllm not importable ({exc}); install the 'vllm' extra"); sys.exit(3)
if not torch.cuda.is_available():
    print("SKIP: no CUDA device"); sys.exit(3)
clip = videos / "videollama_dog_barking.mp4"  # 7 s with audio: 1 fps, 8 frames
if not clip.is_file():
    print(f"SKIP: {clip} absent"); sys.exit(3)
from vllm import LLM, SamplingParams
from transformers import AutoProcessor

from ravst.models.mrope import capture_rotary_positions, inputs_position_ids, rope_spec, verify_model_positions
from ravst.models.qwen import build_inputs, chat_messages
from ravst.models.sampling import SamplingConfig, sample_video
from ravst.models.vllm_backend import check_vllm_version, vllm_request
from ravst.testing.tiny_qwen import build_tiny_qwen_omni_full, build_tiny_qwen_vl, load_tiny_model, multimodal_token_ids

check_vllm_version(vllm.__version__)
tol = float(os.environ.get("LOGP_TOL", "0.05"))
out.mkdir(parents=True, exist_ok=True)
bad = []
for kind, build in (("vl", build_tiny_qwen_vl), ("omni", build_tiny_qwen_omni_full)):
    path = out / f"tiny-{kind}"
    if not (path / "config.json").is_file():
        build(path, hidden_size=128)
    omni = kind == "omni"
    processor = AutoProcessor.from_pretrained(path)
    video = sample_video(clip, SamplingConfig(fps=1.0, max_frames=8, min_pixels=3136, max_pixels=50176),
                         with_audio=omni)
    system, user = "You answer about the video.", "When does the dog bark?"
    text = processor.apply_chat_template(chat_messages(system, user), tokenize=False, add_generation_prompt=True)
    llm = LLM(model=str(path), dtype="bfloat16", max_model_len=8192, gpu_memory_utilization=0.3, seed=0,
              limit_mm_per_prompt={"video": 1, "audio": 1} if omni else {"video": 1}, enforce_eager=True)
    params = SamplingParams(max_tokens=16, temperature=0.0, logprobs=0,
                            logit_bias={i: -100.0 for i in multimodal_token_ids(processor)})
    res = llm.generate([vllm_request(text, video, omni=omni, use_audio=omni)], params, use_tqdm=False)[0]
    prompt_ids, comp = list(res.prompt_token_ids), res.outputs[0]
    vllm_lp = [d[t].logprob for d, t in zip(comp.logprobs, comp.token_ids)]  # raw log-probs of the chosen tokens
    del llm
    torch.cuda.empty_cache()
    # HF on the same frames and prompt, the completion re-scored (teacher forcing), bf16
    model = load_tiny_model(path, dtype=torch.bfloat16).cuda()
    verify_model_positions(model)
    inputs = build_inputs(processor, [(system, user)], [video], use_audio_in_video=omni)
    same_prompt = inputs["input_ids"][0].tolist() == prompt_ids
    ids = torch.tensor([prompt_ids + list(comp.token_ids)])
    full = dict(inputs)
    full["input_ids"], full["attention_mask"] = ids, torch.ones_like(ids)
    if not omni:
        full["mm_token_type_ids"] = (ids == model.config.video_token_id).long() * 2
    pos = inputs_position_ids(rope_spec(model.config), full, use_audio_in_video=omni)
    full = {k: (v.cuda() if hasattr(v, "cuda") else v) for k, v in full.items()}
    for k in ("pixel_values_videos", "input_features"):
        if k in full:
            full[k] = full[k].to(torch.bfloat16)
    if omni:
        full["use_audio_in_video"] = True
    with torch.no_grad(), capture_rotary_positions(model) as seen:
        logits = model(**full, position_ids=pos.cuda()).logits.float()
    n = len(prompt_ids)
    hf_lp = torch.log_softmax(logits[0, n - 1:-1], -1).gather(-1, ids[0, n:, None].cuda())[:, 0].tolist()
    diff = max(abs(a - b) for a, b in zip(hf_lp, vllm_lp)) if hf_lp else float("nan")
    used_ok = torch.equal(seen[0][-3:].long(), pos) if seen else False
    print(f"{kind}: vllm {vllm.__version__}, {len(prompt_ids)} prompt tokens (HF processor equal: {same_prompt}), "
          f"{len(hf_lp)} completion tokens, max |logp HF - vLLM| = {diff:.4f} (tol {tol}), "
          f"positions at the rotary = reference: {used_ok}")
    if not (same_prompt and used_ok and hf_lp and diff <= tol):
        bad.append(kind)
    del model
    torch.cuda.empty_cache()
assert not bad, f"HF / vLLM disagree for {bad}"
PYEOF
result logprob-parity $?

# ---------------------------------------------------------------- training sections: insert above the exit
# ---------------------------------------------------------------- grpo-bf16 / grpo-vllm (training area)
# AVST-Zero GRPO: 2 bf16 steps of a tiny random Qwen2.5-VL on the GPU with a real clip (trainable
# parameters must change; final checkpoint saved), then the same through TRL's colocated vLLM
# rollout (video sent to vLLM) when vllm imports.
for MODE in bf16 vllm; do
section "grpo-$MODE"
"$PY" - "$OUT" "$VIDEOS" "$MODE" <<'PYEOF'
import importlib.util, json, sys, time
from pathlib import Path

import torch

out, videos, mode = Path(sys.argv[1]) / "grpo", Path(sys.argv[2]), sys.argv[3]
if not torch.cuda.is_available():
    print("SKIP: no CUDA device"); sys.exit(3)
if mode == "vllm" and importlib.util.find_spec("vllm") is None:
    print("SKIP: vllm not importable; install the 'vllm' extra"); sys.exit(3)
clip = videos / "unav100_--HuBNHXu9I.mp4"
if not clip.is_file():
    print(f"SKIP: {clip} absent"); sys.exit(3)
from ravst.testing.tiny_qwen import build_tiny_qwen_vl
from ravst.train.config import GRPORunConfig
from ravst.train.grpo import build_grpo_trainer, save_final

out.mkdir(parents=True, exist_ok=True)
qa = out / "qa.json"
qa.write_text(json.dumps([{"video_name": clip.stem, "duration": 60.0, "annotation": [{"event_num": 1,
    "AV Temporal Reasoning": [{"Q": "When is the moment man makes sound and is visible?",
                               "A": "<answer>\n<object>man</object>\n<when>[13.1, 26.2]</when>\n</answer>"}],
    "AV ST Reasoning": [{"Q": 'When is the moment man makes sound and is visible, and where is the "man"?',
                         "A": "<answer>\n<object>man</object>\n<when>[13.1, 15.0]</when>\n<where>\n"
                              "13.1: [60.0, 20.0, 200.0, 240.0]\n14.1: [62.0, 20.0, 200.0, 240.0]\n</where>\n</answer>"}]}]}]))
model = out / "tiny-vl"
if not (model / "config.json").is_file():
    build_tiny_qwen_vl(model, hidden_size=128)


def digits(completions, **_):  # shaping reward: a random policy scores 0 on every AVST-Zero reward
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in texts]


raw = {"model": {"path": str(model), "dtype": "bfloat16"},
       "data": {"qa_files": [str(qa)], "video_dir": str(videos), "fps": 1.0, "max_frames": 8,
                "max_pixels": 50176, "min_pixels": 3136},
       "output_dir": str(out / mode), "bf16": True, "gradient_checkpointing": True, "max_steps": 2,
       "save_steps": 0, "learning_rate": 1e-2, "num_generations": 2, "per_device_train_batch_size": 2,
       "gradient_accumulation_steps": 1, "max_completion_length": 32, "rewards": {"similarity": "exact"}}
if mode == "vllm":
    raw["vllm"] = {"enabled": True, "mode": "colocate", "gpu_memory_utilization": 0.2, "max_model_length": 8192}
trainer = build_grpo_trainer(GRPORunConfig.from_dict(raw), extra_rewards=[(digits, 1.0)])
before = {n: p.detach().float().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
t0 = time.perf_counter()
trainer.train()
dt = time.perf_counter() - t0
now = dict(trainer.model.named_parameters())
changed = sum(not torch.equal(v, now[n].detach().float()) for n, v in before.items())
logs = [h for h in trainer.state.log_history if "rewards/total/mean" in h]
print(torch.cuda.get_device_name(0), f"{mode}: 2 steps {dt:.1f}s, changed {changed}/{len(before)} tensors,",
      "dtypes", sorted({str(p.dtype) for p in trainer.model.parameters()}),
      "reward", [round(h["reward"], 4) for h in logs], "completion len",
      [h.get("completions/mean_length") for h in logs], f"peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
assert changed > 0, "no trainable parameter changed"
final = save_final(trainer, out / mode / "final")
assert (final / "config.json").is_file()
PYEOF
result "grpo-$MODE" $?
done

exit $FAILED
