"""Issue 15's ensemble goal: at most three CPU-trained FER2013 members, weighted by differential evolution.

python benchmarks/fer2013_cpu_ensemble.py CKPT CKPT CKPT [--tta none,paper] [--data ../shared/data]
    [--section NAME --about TEXT]  (another section than fer2013-cpu-ensemble, e.g. for members of other seeds)
    [--choose K]  (a pool of saved members: keep the K whose weighted ensemble is best on validation)

The members are checkpoints trained by `benchmarks/fer2013_recipe.py` (each fit within one CPU hour; their own
sections of docs/benchmarks.md give the fit times), or the probabilities it saved with ``--members PREFIX``: give
PREFIX, and each view set reads ``PREFIX.<views>.probs.npz`` (benchmarks/members/README.md). For each view set, `emoframe ensemble`'s run: every member,
their plain average and the weights found by `scipy.optimize.differential_evolution` on PublicTest (validation),
all scored on PrivateTest (test); then the section ``fer2013-cpu-ensemble``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import DATA, REPO, Stopwatch, engine, ensemble_table, fer2013_zip, publish


def cached_probabilities(ckpt: Path, views: list | None, under: Path) -> Path | None:
    """A probability file an earlier ensemble run saved for ``ckpt`` with these TTA views (no need to recompute)."""
    from emoframe.eval.probabilities import read_probabilities

    want = [v.settings() for v in views] if views else None
    for path in sorted(under.glob("**/members/*.probs.npz")):
        meta = read_probabilities(path).meta
        if meta.get("checkpoint") == str(ckpt.resolve()) and meta.get("tta") == want:
            return path
    return None


def check_views(path: Path, views: list | None, label: str) -> None:
    """A saved member must hold the probabilities of the views its table says (one line, not a wrong table)."""
    from emoframe.eval.probabilities import read_probabilities

    if not path.is_file():
        raise SystemExit(f"{path}: no such probability file (benchmarks/fer2013_recipe.py --members writes them)")
    want = [v.settings() for v in views] if views else None
    if read_probabilities(path).meta.get("tta") != want:
        raise SystemExit(f"{path}: its probabilities are not of the '{label}' views this table is for")


def choose_members(files: list[str], k: int) -> tuple[list[str], list[str]]:
    """The ``k`` of ``files`` (saved members) whose DE-weighted ensemble scores best on validation (PublicTest).

    Test (PrivateTest) is not looked at, so the chosen ensemble's test figure stays an honest estimate; the
    lines returned list every subset's validation accuracy, best first."""
    from itertools import combinations

    from emoframe.ensemble.weights import search_weights
    from emoframe.eval.probabilities import read_probabilities

    val = [read_probabilities(Path(f)).splits["val"] for f in files]
    scored = []
    for subset in combinations(range(len(files)), k):
        search = search_weights([val[i].probs for i in subset], val[subset[0]].labels)
        scored.append((search.val_accuracy, subset))
    scored.sort(key=lambda t: (-t[0], t[1]))
    names = [Path(f).name.split(".")[0] for f in files]
    lines = [f"| {' + '.join(names[i] for i in sub)} | {acc:.4f} |" for acc, sub in scored]
    return [files[i] for i in scored[0][1]], lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "members",
        nargs="+",
        help="the members (at most three for issue 15's goal): checkpoints, probability files, or the PREFIX "
        "of fer2013_recipe.py --members (PREFIX.<tta>.probs.npz for each --tta)",
    )
    p.add_argument("--tta", default="none,paper", help="view sets of the members: none, flip, ten_crop, paper, ...")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--runs", default=str(REPO / "benchmarks" / "runs" / "fer2013_cpu_ensemble"))
    p.add_argument("--section", default="fer2013-cpu-ensemble", help="the section of docs/benchmarks.md to write")
    p.add_argument("--about", default="", help="what sets the members apart, added to the section's heading")
    p.add_argument("--reuse", default=str(REPO / "benchmarks" / "runs"), help="where to look for saved probabilities")
    p.add_argument(
        "--choose", type=int, default=0, help="from a pool of saved members, keep the K best together on validation"
    )
    p.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md as it is")
    ns = p.parse_args()
    import torch

    from emoframe.tta import parse_tta

    zip_path = fer2013_zip(ns.data)
    lines = [
        f"## FER2013: an ensemble of {ns.choose or len(ns.members)} CPU-trained members"
        f"{f' chosen from {len(ns.members)}' if ns.choose else ''}{', ' + ns.about if ns.about else ''} "
        "(issue 15: 72% or more)",
        "",
        "Members: " + ", ".join(f"`{m}`" for m in ns.members) + ". Validation = PublicTest (the weights are "
        "fitted there), test = PrivateTest, all 3,589 images of each. torch threads: "
        f"{torch.get_num_threads()}.",
        "",
    ]
    for label in ns.tta.split(","):
        views = None if label == "none" else parse_tta(label)
        watch = Stopwatch()  # the run's seconds: the members' probabilities (computed or read) included
        members, reused = list(ns.members), {}
        for i, m in enumerate(ns.members):  # a checkpoint whose probabilities with these views are on disk already
            if not m.endswith((".ckpt", ".npz")):  # a prefix of saved members: PREFIX.<label>.probs.npz
                members[i] = m = f"{m}.{label}.probs.npz"
            if m.endswith(".npz"):
                check_views(Path(m), views, label)
            found = cached_probabilities(Path(m), views, Path(ns.reuse)) if m.endswith(".ckpt") else None
            if found is not None:
                members[i], reused[i] = str(found), Path(m)
                print(f"Member {i}: probabilities with {label} views read from {found}", flush=True)
        if ns.choose:
            if any(m.endswith(".ckpt") for m in members):
                raise SystemExit("--choose: give saved members (PREFIX or .probs.npz), not checkpoints")
            pool = members
            members, table = choose_members(pool, ns.choose)
            lines += [
                f"Chosen on validation ({label} views): the {ns.choose} of {len(pool)} saved members whose weighted "
                "ensemble scores best on PublicTest (PrivateTest is not looked at):",
                "",
                "| members | PublicTest accuracy, weighted |",
                "|---|---|",
                *table,
                "",
            ]
        result = engine(
            "ensemble",
            members,
            [f"data.root={zip_path}"],
            name="fer2013_cpu",
            output=Path(ns.runs) / label,
            tta=None if views is None else label,
            device="cpu",
        )
        seconds = watch.elapsed()
        rows = result.rows
        for i, ckpt in reused.items():  # named as its checkpoint, as the computed members are
            rows[i]["model"] = f"{ckpt.parent.parent.parent.name}/{ckpt.parent.parent.name}/{ckpt.stem}"
        best = next(r for r in rows if r["kind"].startswith("best"))
        de, avg = rows[-1], rows[-2]
        lines += [
            f"TTA of the members: {label} ({len(views or [1])} view{'s' if views and len(views) > 1 else ''}); weights kept: {result.search.method}, "
            f"{result.search.describe()} ({seconds:.0f} s for the run, the members' probabilities included"
            f"{f', {len(reused)} of them read from an earlier run' if reused else ''}).",
            "",
            *ensemble_table(rows),
            "",
            f"Weighted minus best member (test): {100 * (de['test_acc'] - best['test_acc']):+.2f} points; weighted "
            f"minus average: {100 * (de['test_acc'] - avg['test_acc']):+.2f}. Ensemble file: "
            f"`{Path(ns.runs).relative_to(REPO) if Path(ns.runs).is_relative_to(REPO) else ns.runs}/{label}/"
            "fer2013_cpu.ensemble.yaml`.",
            "",
        ]
    publish(ns.section, lines, write=not ns.no_write)


if __name__ == "__main__":
    main()
