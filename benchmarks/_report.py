"""Write one benchmark's section of docs/benchmarks.md (between markers), with command, machine and date."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nEvery section below is written by a script in `benchmarks/`; rerun it to refresh the figures.\n"
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name``; the command that made it is the current argv."""
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    stamp = dt.date.today().isoformat()
    section = (
        f"<!-- bench:{name} -->\n{body.rstrip()}\n\n"
        f"*Command:* `{command}`  \n*Machine:* {machine()}  \n*Date:* {stamp}\n<!-- /bench:{name} -->"
    )
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote section '{name}' of {DOC}")


def publish(name: str, body: str | list[str], write: bool = True) -> str:
    """Print a section's body and, unless ``write`` is false (a dry run, a partial run), write it."""
    text = body if isinstance(body, str) else "\n".join(body)
    print(text)
    if write:
        write_section(name, text)
    return text


def ensemble_table(rows: list[dict]) -> list[str]:
    """The member / average / weighted rows of an `emoframe ensemble` run as a markdown table."""
    lines = ["| model | weight | val acc % | test acc % | test macro F1 % |", "|---|---|---|---|---|"]
    for r in rows:
        weight = "" if r["weight"] is None else f"{r['weight']:.3f}"
        best = " (best on val)" if r["kind"].startswith("best") else ""
        lines.append(
            f"| {r['model']}{best} | {weight} | {100 * r['val_acc']:.2f} | {100 * r['test_acc']:.2f} | "
            f"{100 * r['test_macro_f1']:.2f} |"
        )
    return lines
