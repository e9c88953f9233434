"""Sweep files: W&B's documented examples parse; mistakes end in one line naming the key (and the closest name)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emoframe.errors import RecipeError
from emoframe.sweeps.command import trial_command
from emoframe.sweeps.schema import load_sweep, parse_sweep
from emoframe.sweeps.space import from_unit, grid_points, override

REPO = Path(__file__).resolve().parents[2]

# The shapes of the examples in W&B's "Define a sweep configuration" and "Sweep configuration options" pages.
WANDB_EXAMPLES = {
    "basic structure": """
program: train.py
name: sweepdemo
method: bayes
metric:
  goal: minimize
  name: validation_loss
parameters:
  learning_rate:
    min: 0.0001
    max: 0.1
  batch_size:
    values: [16, 32, 64]
  epochs:
    values: [5, 10, 15]
  optimizer:
    values: ["adam", "sgd"]
""",
    "nested parameters": """
program: train.py
method: random
metric: {name: val_loss, goal: minimize}
parameters:
  optimizer:
    parameters:
      learning_rate:
        values: [0.01, 0.001]
      momentum:
        value: 0.9
""",
    "hyperband max_iter": """
program: train.py
method: bayes
metric:
  name: validation_loss
  goal: minimize
early_terminate:
  type: hyperband
  s: 2
  eta: 3
  max_iter: 27
parameters:
  learning_rate:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.1
""",
    "hyperband min_iter": """
program: train.py
method: random
metric: {name: loss, goal: minimize}
early_terminate:
  type: hyperband
  min_iter: 3
parameters:
  dropout: {values: [0.1, 0.2, 0.3]}
""",
    "distributions": """
program: train.py
method: random
run_cap: 20
parameters:
  a: {distribution: normal, mu: 0, sigma: 1}
  b: {distribution: q_log_uniform_values, min: 1, max: 256, q: 1}
  c: {distribution: int_uniform, min: 1, max: 8}
  d: {distribution: q_uniform, min: 0, max: 1, q: 0.25}
  e: {distribution: inv_log_uniform_values, min: 0.001, max: 1.0}
  f: {distribution: log_normal, mu: 0.0, sigma: 0.5}
  g: {distribution: beta, a: 2, b: 5}
  h: {values: [adam, sgd], probabilities: [0.7, 0.3]}
""",
    "command with macros": """
program: train.py
method: grid
parameters:
  param1: {values: [1, 2, 3]}
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - ${args_no_hyphens}
""",
    "hydra command": """
program: main.py
method: grid
parameters:
  model.lr: {values: [0.1, 0.01]}
command:
  - ${env}
  - python
  - ${program}
  - ${args_no_hyphens}
  - ${envvar:HOME}
""",
}


@pytest.mark.parametrize("name", sorted(WANDB_EXAMPLES))
def test_wandb_documentation_examples_parse(name: str) -> None:
    sweep = parse_sweep(yaml.safe_load(WANDB_EXAMPLES[name]), f"{name}.yaml")
    assert sweep.parameters and sweep.method in ("grid", "random", "bayes")


def test_nested_parameters_are_dotted_recipe_keys() -> None:
    sweep = parse_sweep(yaml.safe_load(WANDB_EXAMPLES["nested parameters"]))
    assert [p.name for p in sweep.parameters] == ["optimizer.learning_rate", "optimizer.momentum"]
    assert [p.distribution for p in sweep.parameters] == ["categorical", "constant"]


def test_the_sweep_recipe_parses_and_runs_emoframe_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the W&B agent runs the command in the current folder: the repository root
    sweep = load_sweep(REPO / "sweeps" / "fer2013_small_cnn.yaml")
    argv = trial_command(sweep, ["optimizer.lr=0.01"])
    assert argv[1:5] == ["-m", "emoframe", "fit", "recipes/fer2013_small_cnn.yaml"] and argv[-1] == "optimizer.lr=0.01"
    assert {"optimizer.lr", "optimizer.weight_decay", "loss.label_smoothing", "data.augment.0.p"} <= {
        p.name for p in sweep.parameters
    }


BAD = {
    "method: grdi\nparameters: {a: {values: [1]}}": "method: unknown value 'grdi'. Did you mean 'grid'?",
    "method: grid\nparamaters: {a: {values: [1]}}": "paramaters: unknown key. Did you mean 'parameters'?",
    "method: random\nmetric: {name: x, goal: maximise}\nparameters: {a: {values: [1]}}": "Did you mean 'maximize'?",
    "method: random\nparameters: {lr: {distribution: loguniform_values, min: 0.1, max: 1.0}}": (
        "parameters.lr.distribution: unknown value 'loguniform_values'. Did you mean 'log_uniform_values'?"
    ),
    "method: random\nparameters: {lr: {min: 0.1, maxx: 1.0}}": "parameters.lr.maxx: unknown key. Did you mean 'max'?",
    "method: random\nparameters: {lr: {min: 1.0e-4, max: 1e-2}}": "parameters.lr.max: '1e-2' is a string to YAML 1.1",
    "method: random\nparameters: {lr: {min: 0.5, max: 0.1}}": "parameters.lr: min 0.5 is above max 0.1",
    "method: random\nparameters: {lr: {distribution: log_uniform_values, min: 0, max: 1.0}}": "min must be above 0",
    "method: grid\nparameters: {lr: {min: 0.1, max: 1.0}}": "method grid takes value:, values:",
    "method: bayes\nparameters: {a: {values: [1]}}": "metric: method bayes needs a metric",
    "method: random\nmetric: {name: l}\nearly_terminate: {type: hyperband}\nparameters: {a: {values: [1]}}": (
        "hyperband needs min_iter, or max_iter and s"
    ),
    "method: random\nmetric: {name: l}\nearly_terminate: {type: hyperband, min_iter: 1, eta: 1}\nparameters: {a: {value: 1}}": (
        "early_terminate.eta: expected a number above 1"
    ),
    "method: random\nrun_cap: 0\nparameters: {a: {values: [1]}}": "run_cap: expected a positive integer",
    "method: random\nparameters: {a: {values: [1, 2], probabilities: [0.5, 0.6]}}": "sum to 1.1, not 1",
    "method: random\nparameters: {a: {values: [1]}}\ncommand: [x, '${args_no_hyphen}']": (
        "command[1]: ${args_no_hyphen}: unknown value 'args_no_hyphen'. Did you mean 'args_no_hyphens'?"
    ),
    "method: random\nparameters: {}": "parameters: no parameters",
    # found by the sweep fuzzer (tests/test_fuzz_recipes.py): each was a traceback in the first trial or its check
    "method: random\nparameters: {a: {distribution: q_beta, a: 0, b: 1}}": "parameters.a.a: expected a number above 0",
    "method: random\nparameters: {a: {distribution: log_uniform, min: 0, max: 1000}}": (
        "parameters.a: distribution log_uniform with min 0, max 1000 draws values beyond a float's range (min and "
        "max are exponents"
    ),
    "method: random\nparameters: {a: {distribution: inv_log_uniform, min: 0, max: 800}}": "draws values down to 0",
    "method: random\nparameters: {a: {distribution: log_normal, mu: 705, sigma: 1}}": (
        "parameters.a: distribution log_normal with mu 705, sigma 1 draws values beyond a float's range"
    ),
    "method: random\nparameters: {a: {distribution: q_normal, mu: 1.0e+300, sigma: 1.0e+300, q: 1.0e-300}}": (
        "draws values beyond a float's range"
    ),
    f"method: random\nrun_cap: {10**400}\nparameters: {{a: {{value: 1}}}}": "run_cap: expected an integer, got int",
    "method: random\nparameters: {a: {values: [1]}}\nmetric: {name: x, goal: [1]": "not valid YAML",
}


@pytest.mark.parametrize("text", list(BAD))
def test_bad_sweep_files_give_one_line(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as err:
        load_sweep(path)
    message = str(err.value)
    assert "\n" not in message and BAD[text] in message and str(path) in message, message


def test_a_command_without_key_value_overrides_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(
        WANDB_EXAMPLES["basic structure"].replace("program: train.py", "program: r.yaml\ncommand: [a, fit, '${args}']")
    )
    with pytest.raises(RecipeError, match=r"put \$\{args_no_hyphens\} in it \(\$\{args\} gives --key=value flags\)"):
        trial_command(load_sweep(path), [])


def test_grid_points_and_values_as_overrides() -> None:
    sweep = parse_sweep(
        yaml.safe_load(
            "method: grid\nparameters:\n  a: {values: [1, 2]}\n  b: {value: 3}\n"
            "  c: {values: [[1, 2], {x: 1}]}\n  d: {distribution: int_uniform, min: 0, max: 2}"
        )
    )
    points = grid_points(sweep.parameters)
    assert len(points) == 2 * 2 * 3 and len({str(p) for p in points}) == 12 and "b" not in points[0]
    assert override("a", None) == "a=null" and override("a", "true") == 'a="true"' and override("a", "adam") == "a=adam"
    assert override("a", [{"name": "HorizontalFlip", "p": 0.5}]) == 'a=[{"name": "HorizontalFlip", "p": 0.5}]'
    assert override("a", 1e-05) == "a=1e-05"


def test_distributions_without_an_optuna_twin_go_through_their_quantiles() -> None:
    sweep = parse_sweep(yaml.safe_load(WANDB_EXAMPLES["distributions"]))
    p = {q.name: q for q in sweep.parameters}
    assert from_unit(p["a"], 0.5) == pytest.approx(0.0) and from_unit(p["a"], 0.975) == pytest.approx(1.96, abs=1e-2)
    assert from_unit(p["h"], 0.69) == "adam" and from_unit(p["h"], 0.71) == "sgd"
    assert 0.0 < from_unit(p["g"], 0.5) < 0.5 and from_unit(p["f"], 0.5) == pytest.approx(1.0)
