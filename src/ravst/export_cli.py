"""``ravst export``: share QAs where users already are.

``ravst export hf --qa FILE --videos DIR --out DIR`` writes a Hugging Face dataset folder
(``datasets.load_dataset(DIR)`` reads it; see ``ravst.formats.hf`` and docs/formats.md).
``--qa`` may repeat as ``SPLIT=FILE`` (``--qa train=train.json --qa test=test.json``); a bare
``FILE`` is the ``test`` split.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    hf = sub.add_parser("hf", help="a Hugging Face dataset folder (parquet + dataset card + videos/)",
                        description="Write QAs as a folder that datasets.load_dataset reads.")
    hf.add_argument("--qa", action="append", required=True, metavar="[SPLIT=]FILE",
                    help="QA file (official layout, or a dataset folder); repeat as SPLIT=FILE for several "
                         "splits; a bare FILE is the 'test' split")
    hf.add_argument("--videos", type=Path, default=None, help="folder with the clips (name.mp4 ...)")
    hf.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    hf.add_argument("--video-mode", choices=["symlink", "copy", "none"], default="symlink",
                    help="videos/ holds symlinks (default), copies (to share the folder) or nothing")
    hf.add_argument("--allow-missing-videos", action="store_true",
                    help="export QAs whose clip is not in --videos (video_path null, counted, warned)")
    hf.add_argument("--license", default="mit", help="licence id for the card's YAML header (default mit)")
    hf.add_argument("--name", default="R-AVST", help="dataset title in the card")


def _splits(specs: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for spec in specs:
        split, sep, file = spec.partition("=")
        if not sep:
            split, file = "test", spec
        if split in out:
            raise ValueError(f"--qa: split {split!r} given twice")
        out[split] = Path(file)
    return out


def run(args: argparse.Namespace) -> int:
    from ravst.formats import FormatError
    from ravst.formats.hf import export_hf
    from ravst.formats.official import read_official

    try:
        specs = _splits(args.qa)
        splits = {}
        for split, path in specs.items():
            if not path.exists():
                log.error("--qa %s: no such file", path)
                return 2
            splits[split] = read_official(path)
        if args.video_mode != "none" and args.videos is None:
            log.error("--videos DIR is required (or --video-mode none)")
            return 2
        result = export_hf(splits, args.out, videos_dir=args.videos, video_mode=args.video_mode,
                           allow_missing_videos=args.allow_missing_videos, licence=args.license,
                           name=args.name, source=", ".join(str(p) for p in specs.values()))
    except (FormatError, ValueError, OSError) as err:
        log.error("%s", err)
        return 2
    log.info("wrote %s: %s QAs, %d videos%s", result.out_dir,
             ", ".join(f"{s} {n}" for s, n in result.n_rows.items()), result.n_videos,
             f" ({len(result.missing_videos)} missing)" if result.missing_videos else "")
    return 0
