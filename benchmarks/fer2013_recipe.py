"""Train a FER2013 recipe, test its best checkpoint, and record accuracy and wall time as the recipe's row of the
table `fer2013-recipes` in docs/benchmarks.md (one row per recipe and overrides; a rerun replaces its row).

python benchmarks/fer2013_recipe.py recipes/fer2013_small_cnn.yaml [key=value ...] [--data ../shared/data]
    [--members PREFIX]  (also save the best checkpoint's val/test probabilities, PREFIX.none.probs.npz and, when the
                         recipe tests with TTA, PREFIX.<views>.probs.npz: small files to commit, so that ensemble
                         members outlive the machine that trained them; `emoframe ensemble` takes them as members)
"""

from __future__ import annotations

import argparse

from harness import DATA, REPO, fit_and_test, publish_recipe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--runs", default=str(REPO / "benchmarks" / "runs"))
    p.add_argument("--members", help="save the val/test probabilities as PREFIX.<views>.probs.npz")
    p.add_argument("--no-write", action="store_true", help="print the row, leave docs/benchmarks.md as it is")
    ns = p.parse_args()
    run = fit_and_test(ns.recipe, ns.overrides, data=ns.data, runs=ns.runs, members=ns.members)
    publish_recipe(run, write=not ns.no_write)


if __name__ == "__main__":
    main()
