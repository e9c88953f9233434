"""A small AFEW-VA-layout set cut from the one real clip (``afew_va/001``): a few short clips of its frames.

The frames are symbolic links to the real PNGs (nothing copied); each clip gets its own ``<id>.json``
holding the real annotations of its frames, so splits and recipes can be exercised with real data.
"""

from __future__ import annotations

import json
from pathlib import Path


def make_afew_va_subset(clip: Path, root: Path, clips: int = 3, frames: int = 8) -> Path:
    """``clips`` folders ``001..`` of ``frames`` consecutive frames each of the real ``clip``, under ``root``."""
    doc = json.loads((clip / f"{clip.name}.json").read_text())
    names = sorted(doc["frames"])
    for k in range(clips):
        cid = f"{k + 1:03d}"
        out = root / cid
        out.mkdir(parents=True, exist_ok=True)
        picked = names[k * frames : (k + 1) * frames]
        for name in picked:
            (out / f"{name}.png").symlink_to((clip / f"{name}.png").resolve())
        sub = {**doc, "video_id": cid, "frames": {n: doc["frames"][n] for n in picked}}
        (out / f"{cid}.json").write_text(json.dumps(sub))
    return root
