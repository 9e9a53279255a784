"""``python -m ravst.lmms_eval_tasks``: print the lmms-eval ``--include_path`` of the R-AVST tasks."""

from __future__ import annotations

import sys

from ravst.lmms_eval_tasks import task_dir


def main() -> int:
    sys.stdout.write(f"{task_dir()}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
