"""filter + analyze (rules) + qa over the whole UnAV-100 file: wall time per stage.

    .venv/bin/python benchmarks/bench_pipeline.py [--annotations ../shared/data/unav100/unav100_annotations.json]

Runs in a fresh temporary output folder (every stage computes), then a second time over the
same folder (every stage must be skipped as up to date). Without videos there are no boxes,
so qa writes the temporal QAs only; spatial QAs need the annotate stage.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ravst.pipeline.config import PipelineConfig
from ravst.pipeline.stages import run_analyze, run_filter, run_qa


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "unav100" / "unav100_annotations.json"
    parser.add_argument("--annotations", default=str(default))
    parser.add_argument("--out", help="output folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PipelineConfig(out_dir=args.out or tmp, annotations=args.annotations)
        for attempt in ("cold", "re-run"):
            total = 0.0
            for name, stage in (("filter", run_filter), ("analyze", run_analyze), ("qa", run_qa)):
                t0 = time.perf_counter()
                result = stage(cfg, progress=False)
                elapsed = time.perf_counter() - t0
                total += elapsed
                print(f"{attempt:7s} {name:8s} {elapsed:7.2f} s  ok={result.num_ok} failed={result.num_failed} "
                      f"skipped={result.skipped}")
            print(f"{attempt:7s} {'total':8s} {total:7.2f} s")
        summary = json.loads((Path(cfg.out_dir) / "filter" / "summary.json").read_text())
        qa = json.loads((Path(cfg.out_dir) / "qa" / "r_avst_qa.json").read_text())
        print("kept per subset:", {k: v["kept"] for k, v in summary.items()},
              "videos with QAs:", len(qa), "QAs:", sum(len(q) for v in qa for e in v["annotation"]
                                                      for k, q in e.items() if k != "event_num"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
