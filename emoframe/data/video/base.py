"""The part window and clip datamodules share: one ``Recordings`` object, the loader and image settings, the
Lightning hooks that load the splits a stage needs, and the options both take (``VideoOptions``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypedDict

from torch.utils.data import DataLoader

from emoframe.data.common import Section, SplitDataModule, make_loader
from emoframe.data.video.recordings import SPLITS, STAGE_SPLITS, OnBad, Recording, Recordings, Source, build_faces
from emoframe.errors import DataError


class VideoOptions(TypedDict, total=False):
    """Keyword arguments every video datamodule takes, declared once (defaults: ``VideoDataModule``)."""

    loader: Section
    image: Section
    faces: dict[str, Any] | None
    cache_dir: str | None
    workers: int
    predict_videos: list[str] | None


class VideoDataModule(SplitDataModule):
    """Recordings of face crops (``self.recording_set``) served by a subclass's datasets.

    ``loader: {batch_size, num_workers}`` and ``image: {size, channels, mean, std}`` start from the class's
    ``section_defaults``. ``faces`` are ``face_crop`` settings (size and grayscale follow ``image``),
    extracted by ``workers`` processes into the face-track cache under ``cache_dir``. ``predict_videos``
    (video files or frame folders) are what ``emoframe predict`` runs on; without them it predicts the test
    split.
    """

    extract_chunk: ClassVar[int] = 4
    """Videos per face-track extraction round (a round's tracks are held in memory: 0.5 GB per RECOLA video)."""
    require_face: ClassVar[bool] = False

    def __init__(
        self,
        *,
        on_bad: OnBad,
        policy_key: str,
        loader: Section = None,
        image: Section = None,
        faces: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        workers: int = 1,
        predict_videos: list[str] | None = None,
    ) -> None:
        super().__init__(loader=loader, image=image)
        self.mean, self.std = self.image.per_channel()
        self.cache_dir, self.workers = cache_dir, max(1, int(workers))
        self.predict_videos = [str(Path(v).expanduser()) for v in (predict_videos or [])]
        self.faces = build_faces(faces, self.image.size, self.image.channels)
        self.recording_set = Recordings(
            faces=self.faces,
            cache_dir=cache_dir,
            workers=self.workers,
            on_bad=on_bad,
            policy_key=policy_key,
            chunk=self.extract_chunk,
            owner=type(self).__name__,
            require_face=self.require_face,
        )
        self._recordings: dict[str, list[Recording]] = {}

    # --- what subclasses provide -------------------------------------------------------------
    def sources(self) -> dict[str, list[Source]]:
        """The recordings of ``train``, ``val`` and ``test`` (with their label aligners)."""
        raise NotImplementedError

    def predict_sources(self) -> list[Source]:
        """The ``predict_videos`` as sources."""
        raise NotImplementedError

    # --- bookkeeping the builder, tasks and extraction read ----------------------------------
    @property
    def skipped(self) -> dict[str, str]:
        """Source or recording -> reason, for what the skip policy left out."""
        return self.recording_set.skipped

    def bad(self, what: str, reason: str) -> None:
        """A bad recording: a one-line error, or counted under the skip policy."""
        self.recording_set.bad(what, reason)

    def recordings(self, split: str) -> list[Recording]:
        """The recordings of a split (``predict``: ``predict_videos``, else the test split), loaded on first use."""
        if split == "predict" and self.predict_videos:
            self.setup("predict")
            return self._recordings["predict"]
        split = "test" if split == "predict" else split
        self._ensure((split,))
        return self._recordings[split]

    # --- Lightning hooks -----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Face tracks of the splits a stage needs (extracted once, cached), labels aligned to frames."""
        if stage == "predict" and self.predict_videos:
            if "predict" not in self._recordings:
                self._recordings["predict"] = self._load({"predict": self.predict_sources()})["predict"]
            return
        self._ensure(STAGE_SPLITS.get(stage or "fit", SPLITS))

    def prepare_data(self) -> None:
        """Extract the needed face tracks on one process per node first; DDP ranks then read the cache."""
        fn = getattr(getattr(self.trainer, "state", None), "fn", None)
        self.setup(str(getattr(fn, "value", fn) or "fit"))

    def _ensure(self, splits: tuple[str, ...]) -> None:
        todo = [s for s in splits if s not in self._recordings]
        if not todo:
            return
        plan = self.sources()
        loaded = self._load({s: plan.get(s, []) for s in todo})
        for split in todo:
            if not loaded[split] and split != "test":  # a test split may be absent (predict-only data)
                raise DataError(f"{type(self).__name__}: the {split} split has no usable recordings")
            self._recordings[split] = loaded[split]

    def _load(self, plan: dict[str, list[Source]]) -> dict[str, list[Recording]]:
        return self.recording_set.load(plan, self.num_classes)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        if not len(dataset):  # type: ignore[arg-type]
            raise DataError(f"{type(self).__name__}: no {split} windows (no recording with labelled frames)")
        return make_loader(dataset, self.loader, shuffle, self.trainer)
