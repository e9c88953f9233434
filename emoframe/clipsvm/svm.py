"""Linear SVMs on clip features, their score ensemble and class-prior weighting (Knyazev et al., EmotiW 2017).

* ``ClipSVM``: one feature set (one network's per-frame features) -> ``pipeline`` steps -> ``LinearSVC``,
  with C chosen by stratified k-fold cross-validation ("The regularization constant of SVMs is found by
  5-fold cross-validation"). The scalers are refitted inside every fold, so no fold sees its held-out clips.
  ``LinearSVC`` (liblinear) rather than ``SVC(kernel="linear")`` (libsvm): it trains one-vs-rest, so every
  class gets its own margin to average across SVMs and weight by a prior (libsvm's one-vs-one
  ``decision_function`` is vote counts plus a tie-break), and it scales to thousands of clips of
  4 x 4096 features where libsvm's kernel solver is quadratic in the number of clips.
* ``SVMEnsemble``: "our ensemble averages scores of 5 SVMs". Each member's one-vs-rest scores are
  standardised with one mean and one standard deviation taken over its training scores (a single pair per
  member, so its own class ranking is unchanged while members with larger margins do not dominate),
  then averaged.
* Class-prior weighting: "weighting scores of emotions according to the square root of the observed test
  set frequencies" (Table 5: weights sqrt(n_c) / sum sqrt(n), e.g. 0.15 ... 0.21 ... 0.08). Multiplying raw
  SVM margins by weights is sign-dependent (a negative margin times a small weight *rises*), yet the paper
  says the weighting made rare classes rarer; so the weights multiply positive scores: softmax(s) * w,
  renormalised, whose logarithm is ``s + log w`` up to a per-clip constant. ``decision_function`` returns
  ``s + log w``; ``predict`` is its argmax. ``prior="train"`` uses the training frequencies; a list of
  counts (or frequencies) per class, e.g. an expected test distribution, reproduces the paper's use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from emoframe.clipsvm.aggregations import check_aggregations, check_clips
from emoframe.clipsvm.pipeline import clip_feature_steps
from emoframe.errors import DataError, RecipeError
from emoframe.labels import EMOTIONS
from emoframe.registry import check_arguments

DEFAULT_C_GRID: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""Log grid of SVM regularisation constants; standardised 10^3-10^4-dimensional features favour small C."""

FILE_FORMAT = "emoframe-svm"
FILE_VERSION = 1


def _class_name(label: Any) -> str:
    """``1 (disgust)`` for emoframe's integer labels, the label itself otherwise."""
    if isinstance(label, (int, np.integer)) and 0 <= int(label) < len(EMOTIONS):
        return f"{int(label)} ({EMOTIONS[int(label)]})"
    return repr(label.item() if isinstance(label, np.generic) else label)


def check_labels(y: Any, n_clips: int, where: str = "y") -> np.ndarray:
    """Clip labels as a 1-D array of ``n_clips`` entries with at least two classes, or a one-line ``DataError``."""
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != n_clips:
        raise DataError(f"{where}: expected one label per clip ({n_clips}), got shape {labels.shape}")
    if len(np.unique(labels)) < 2:
        raise DataError(f"{where}: expected clips of at least two classes, got only {_class_name(labels[0])}")
    return labels


def prior_weights(counts: Sequence[float] | np.ndarray, power: float = 0.5, where: str = "prior") -> np.ndarray:
    """Class weights counts**power / sum, the paper's sqrt-of-frequency weights (Table 5's last row)."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or len(c) < 2 or not np.isfinite(c).all() or (c <= 0).any():
        raise RecipeError(f"{where}: expected a positive count or frequency per class, got {list(np.ravel(counts))}")
    w = c**power
    return w / w.sum()


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check_svm_options(
    aggregations: Sequence[str], c_grid: Sequence[float], folds: int, fft_length: int | None, where: str = ""
) -> None:
    """One-line ``RecipeError`` naming the key (under ``where``) for a bad ``ClipSVM`` option."""
    check_aggregations(aggregations, _key(where, "aggregations"))
    if isinstance(c_grid, str) or not isinstance(c_grid, Sequence) or not c_grid:
        raise RecipeError(f"{_key(where, 'c_grid')}: expected a non-empty list of positive numbers, got {c_grid!r}")
    for i, c in enumerate(c_grid):
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not np.isfinite(c) or c <= 0:
            raise RecipeError(f"{_key(where, 'c_grid')}[{i}]: expected a positive number, got {c!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise RecipeError(f"{_key(where, 'folds')}: expected an integer >= 2 (cross-validation folds), got {folds!r}")
    if fft_length is not None and (isinstance(fft_length, bool) or not isinstance(fft_length, int) or fft_length < 1):
        raise RecipeError(f"{_key(where, 'fft_length')}: expected a positive integer or null, got {fft_length!r}")


def check_prior(prior: Any, where: str = "prior") -> None:
    """One-line ``RecipeError`` unless ``prior`` is null, 'train' or positive counts per class."""
    if isinstance(prior, str) and prior != "train":
        raise RecipeError(f"{where}: expected null, 'train' or a list of class counts, got {prior!r}")
    if prior is not None and not isinstance(prior, str):
        if not isinstance(prior, (Sequence, np.ndarray)):
            raise RecipeError(f"{where}: expected null, 'train' or a list of class counts, got {prior!r}")
        prior_weights(prior, where=where)


class ClipSVM(ClassifierMixin, BaseEstimator):
    """One feature set: clips -> aggregate, rescale, RootSIFT, standardise -> ``LinearSVC``, C by CV.

    After ``fit``: ``pipeline_`` (the whole fitted ``Pipeline``, refitted on all training clips with the
    best C), ``best_C_``, ``cv_accuracy_`` (mean held-out fold accuracy at ``best_C_``), ``cv_results_``
    and ``classes_``. Ties in CV accuracy go to the smallest C (the strongest regularisation).
    """

    def __init__(
        self,
        aggregations: Sequence[str] = ("stat_star",),
        c_grid: Sequence[float] = DEFAULT_C_GRID,
        folds: int = 5,
        fft_length: int | None = None,
        max_iter: int = 10000,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        check_svm_options(aggregations, c_grid, folds, fft_length)
        self.aggregations = aggregations
        self.c_grid = c_grid
        self.folds = folds
        self.fft_length = fft_length
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, clips: Any, y: Any, *, where: str = "clips") -> ClipSVM:
        """Choose C by stratified ``folds``-fold CV on the training clips, then refit on all of them."""
        frames = check_clips(clips, where=where)
        labels = check_labels(y, len(frames), where=f"labels of {where}")
        classes, counts = np.unique(labels, return_counts=True)
        if counts.min() < self.folds:
            k = int(counts.argmin())
            raise DataError(
                f"{where}: class {_class_name(classes[k])} has {counts[k]} training clips, fewer than the "
                f"{self.folds} cross-validation folds; give each class at least {self.folds} clips or lower folds"
            )
        steps = clip_feature_steps(self.aggregations, self.fft_length)
        aggregator = steps[0][1]
        x = aggregator.fit_transform(frames)  # stateless per clip: done once, not once per fold
        svm = LinearSVC(dual="auto", max_iter=self.max_iter, random_state=self.random_state)
        head = Pipeline([*steps[1:], ("svm", svm)])
        search = GridSearchCV(
            head,
            {"svm__C": sorted(float(c) for c in self.c_grid)},
            cv=StratifiedKFold(self.folds, shuffle=True, random_state=self.random_state),
            scoring="accuracy",
            n_jobs=self.n_jobs,
        )
        search.fit(x, labels)
        self.pipeline_ = Pipeline([("aggregate", aggregator), *search.best_estimator_.steps])
        self.best_C_ = float(search.best_params_["svm__C"])
        self.cv_accuracy_ = float(search.best_score_)
        self.cv_results_ = search.cv_results_
        self.classes_ = self.pipeline_.classes_
        return self

    def decision_function(self, clips: Any, *, where: str = "clips") -> np.ndarray:
        """One-vs-rest margins, ``(N, n_classes)`` (two columns ``[-s, s]`` for two classes)."""
        check_is_fitted(self, "pipeline_")
        frames = check_clips(clips, n_features=self.pipeline_[0].n_frame_features_, where=where)
        scores = self.pipeline_.decision_function(frames)
        return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores

    def predict(self, clips: Any, *, where: str = "clips") -> np.ndarray:
        """The class with the largest margin."""
        return self.classes_[self.decision_function(clips, where=where).argmax(axis=1)]

    def save(self, path: str | Path) -> Path:
        """Write with joblib next to a run; ``load_model`` reads it back."""
        return save_model(self, path)


class SVMEnsemble(ClassifierMixin, BaseEstimator):
    """Average of standardised ``ClipSVM`` scores over feature sets, optionally weighted by class priors.

    ``members`` maps a name (a network, an aggregation recipe) to an unfitted ``ClipSVM``. ``fit``,
    ``decision_function`` and ``predict`` take either a mapping name -> clips (one entry per member, same
    clips in the same order) or one list of clips shared by every member. ``prior``: ``None`` (no
    weighting), ``"train"`` (sqrt of training class frequencies) or counts per class in ``classes_`` order.
    After ``fit``: ``members_`` (fitted copies), ``score_mean_``/``score_std_`` per member, ``classes_``,
    ``class_counts_`` (training clips per class); ``class_weights()`` gives the weights of the current prior.
    """

    def __init__(self, members: Mapping[str, ClipSVM], prior: str | Sequence[float] | None = None) -> None:
        if not isinstance(members, Mapping) or not members:
            raise RecipeError(f"members: expected a non-empty mapping of name -> ClipSVM, got {members!r}")
        for name, member in members.items():
            if not isinstance(member, ClipSVM):
                raise RecipeError(f"members.{name}: expected a ClipSVM, got {type(member).__name__}")
        check_prior(prior)
        self.members = members
        self.prior = prior

    def _inputs(self, features: Any, where: str) -> dict[str, Any]:
        """Clips per member, every member getting the same number of clips."""
        if isinstance(features, Mapping):
            missing = [name for name in self.members if name not in features]
            if missing:
                raise DataError(
                    f"{where}: no clips for member '{missing[0]}'; got keys {', '.join(map(str, features)) or '(none)'}"
                )
            inputs = {name: features[name] for name in self.members}
        else:
            inputs = dict.fromkeys(self.members, features)
        lengths = {name: len(clips) for name, clips in inputs.items() if hasattr(clips, "__len__")}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{name}: {n}" for name, n in lengths.items())
            raise DataError(f"{where}: every member needs the same clips, got different counts ({shown})")
        return inputs

    @staticmethod
    def _where(where: str, name: str, shared: bool) -> str:
        return where if shared else f"{where}['{name}']"

    def fit(self, features: Any, y: Any, *, where: str = "features") -> SVMEnsemble:
        """Fit every member (C by CV each), the score standardisation, and the class weights."""
        shared = not isinstance(features, Mapping)
        inputs = self._inputs(features, where)
        self.members_: dict[str, ClipSVM] = {}
        self.score_mean_: dict[str, float] = {}
        self.score_std_: dict[str, float] = {}
        for name, clips in inputs.items():
            member = clone(self.members[name]).fit(clips, y, where=self._where(where, name, shared))
            if self.members_ and not np.array_equal(member.classes_, next(iter(self.members_.values())).classes_):
                raise DataError(f"{where}: member '{name}' saw classes {member.classes_}, others saw other classes")
            scores = member.decision_function(clips)
            self.members_[name] = member
            self.score_mean_[name] = float(scores.mean())
            self.score_std_[name] = float(scores.std()) or 1.0
        self.classes_ = next(iter(self.members_.values())).classes_
        labels = np.asarray(y)
        self.class_counts_ = np.array([(labels == c).sum() for c in self.classes_])
        self.class_weights()  # a prior of the wrong length fails now, not at prediction time
        return self

    def class_weights(self) -> np.ndarray:
        """Weights per class in ``classes_`` order, summing to 1, from the current ``prior`` (uniform if null).

        Computed at call time, so ``set_params(prior=...)`` after ``fit`` re-weights without refitting.
        """
        check_is_fitted(self, "members_")
        check_prior(self.prior)
        k = len(self.classes_)
        if self.prior is None:
            return np.full(k, 1.0 / k)
        if isinstance(self.prior, str):
            return prior_weights(self.class_counts_)
        if len(self.prior) != k:
            raise RecipeError(
                f"prior: expected {k} class counts (for classes {list(self.classes_)}), got {len(self.prior)}"
            )
        return prior_weights(self.prior)

    def member_scores(self, features: Any, *, where: str = "features") -> dict[str, np.ndarray]:
        """Each member's standardised ``(N, n_classes)`` scores."""
        check_is_fitted(self, "members_")
        shared = not isinstance(features, Mapping)
        out = {}
        for name, clips in self._inputs(features, where).items():
            raw = self.members_[name].decision_function(clips, where=self._where(where, name, shared))
            out[name] = (raw - self.score_mean_[name]) / self.score_std_[name]
        return out

    def decision_function(self, features: Any, *, where: str = "features") -> np.ndarray:
        """Mean standardised score + log(class weight): log of softmax(mean) * weights, up to a per-clip constant."""
        mean = np.mean(list(self.member_scores(features, where=where).values()), axis=0)
        return mean if self.prior is None else mean + np.log(self.class_weights())

    def predict(self, features: Any, *, where: str = "features") -> np.ndarray:
        """The class with the largest (weighted) ensemble score."""
        return self.classes_[self.decision_function(features, where=where).argmax(axis=1)]

    def save(self, path: str | Path) -> Path:
        """Write with joblib next to a run; ``load_model`` reads it back."""
        return save_model(self, path)


def save_model(model: ClipSVM | SVMEnsemble, path: str | Path) -> Path:
    """Write a fitted model with joblib, tagged with the format and the scikit-learn version."""
    if not isinstance(model, (ClipSVM, SVMEnsemble)):
        raise DataError(f"save_model: expected a ClipSVM or SVMEnsemble, got {type(model).__name__}")
    check_is_fitted(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FILE_FORMAT, "version": FILE_VERSION, "sklearn": sklearn.__version__, "model": model}
    joblib.dump(payload, path)
    return path


def load_model(path: str | Path) -> ClipSVM | SVMEnsemble:
    """A model written by ``save_model`` (a pickle: load only files you trust), or a one-line ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"SVM model not found at {path}: expected a file written by emoframe's save_model")
    try:
        payload = joblib.load(path)
    except Exception as err:  # truncated or foreign files fail in many ways inside pickle
        raise DataError(f"{path}: not a readable joblib file ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise DataError(f"{path}: not an emoframe SVM file (expected a '{FILE_FORMAT}' payload from save_model)")
    if payload.get("version") != FILE_VERSION:
        raise DataError(f"{path}: emoframe SVM file version {payload.get('version')}, expected {FILE_VERSION}")
    return payload["model"]


def build_svm_ensemble(cfg: Mapping[str, Any], where: str = "svm") -> SVMEnsemble:
    """An ``SVMEnsemble`` from a recipe mapping, keys checked with their path before anything is fitted.

    ``{prior: train, members: {vgg_face: {aggregations: [stat_star, fft], c_grid: [0.001, 0.01]}}}``
    """
    if not isinstance(cfg, Mapping):
        raise RecipeError(f"{where}: expected a mapping with 'members:' (and optionally 'prior:'), got {cfg!r}")
    unknown = sorted(set(cfg) - {"members", "prior"})
    if unknown:
        raise RecipeError(f"Unknown key {where}.{unknown[0]}. Accepted: members, prior")
    members = cfg.get("members")
    if not isinstance(members, Mapping) or not members:
        raise RecipeError(f"{where}.members: expected a non-empty mapping of name -> ClipSVM options, got {members!r}")
    built = {}
    for name, spec in members.items():
        at = f"{where}.members.{name}"
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            raise RecipeError(f"{at}: expected a mapping of ClipSVM options, got {spec!r}")
        check_arguments(ClipSVM, spec, at)
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
        merged = {**ClipSVM().get_params(), **options}
        keys = ("aggregations", "c_grid", "folds", "fft_length")
        check_svm_options(**{k: merged[k] for k in keys}, where=at)
        built[str(name)] = ClipSVM(**options)
    check_prior(cfg.get("prior"), f"{where}.prior")
    return SVMEnsemble(built, prior=cfg.get("prior"))
