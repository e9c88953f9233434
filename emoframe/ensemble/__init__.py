"""Weighted ensembles of frame models (Kumari: weights by differential evolution on validation probabilities).

- ``weights``: ``search_weights`` (scipy's ``differential_evolution``) and ``combine``, on plain arrays.
- ``files``: the ensemble file (``<name>.ensemble.yaml``: members' checkpoints, weights, class names).
- ``members``: checkpoint and probability-file members; ``Ensemble`` and ``load_ensemble``, one model of many.
- ``run``: ``emoframe ensemble`` (members -> weights -> report -> ensemble file).
- ``evaluate``: ``emoframe test``/``predict`` with ``--tta``, ``--save-probs`` or an ensemble file as ``--ckpt``.

``from emoframe.ensemble import load_ensemble``: ``load_ensemble("x.ensemble.yaml")(frames)`` gives the
weighted class probabilities of its members, with ``class_names`` and ``preprocessing`` as ``load_model``'s.
"""

from emoframe.ensemble.files import EnsembleSpec, is_ensemble_file, read_ensemble, write_ensemble
from emoframe.ensemble.members import Ensemble, load_ensemble
from emoframe.ensemble.weights import WeightSearch, combine, search_weights

__all__ = [
    "Ensemble",
    "EnsembleSpec",
    "WeightSearch",
    "combine",
    "is_ensemble_file",
    "load_ensemble",
    "read_ensemble",
    "search_weights",
    "write_ensemble",
]
