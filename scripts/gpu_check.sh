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
