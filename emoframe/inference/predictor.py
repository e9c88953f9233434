"""``emoframe.load_model(...)``'s result: the trained model, callable as before, with ``predict`` for anything.

    model = emoframe.load_model("best.ckpt")        # or "model.onnx" / "model.ts" (emoframe export)
    table = model.predict("photo.jpg")              # a path, a PIL image, an array, a list of them, a video
    table[["source", "frame", "track_id", "prediction", "p_happy"]]

``Model`` wraps the task (or the exported runtime): calling it runs the network's forward, and every other
attribute is the task's (``class_names``, ``preprocessing``, ``eval()``, ``state_dict()``...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emoframe.inference.faces import FaceMode
from emoframe.inference.run import Options, Summary, predict
from emoframe.inference.sources import expand_inputs
from emoframe.inference.spec import Runner


class Model:
    """A trained model (``module``: the Task, or an exported model) and the ``spec`` the pipeline runs it with."""

    def __init__(self, module: Any, spec: Runner, preprocessing: dict[str, Any]) -> None:
        self.__dict__.update(module=module, spec=spec, preprocessing=preprocessing)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["module"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__:
            self.__dict__[name] = value
        else:
            setattr(self.module, name, value)

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    def __repr__(self) -> str:
        return f"Model({self.spec.task_name or self.spec.kind}, classes={self.class_names})"

    def predict(self, x: Any, faces: FaceMode = "all", tta: Any = None, **options: Any) -> Any:
        """A pandas DataFrame with ``emoframe predict``'s columns for ``x``: an image or video path (or a folder,
        glob, camera index or stream URL), a PIL image, a numpy array (H, W[, C]), or a list of any of them.
        ``tta``: views to average a frame model's probabilities over (``paper``, ``flip``, 1-18, ...);
        ``options``: ``emoframe.inference.Options``' (``every``, ``fps``, ``batch_size``, ``progress``, and
        ``detect_every=N``, which finds faces in one looked-at frame in N and crops the others in its boxes)."""
        inputs: Sequence[Any] = x if isinstance(x, (list, tuple)) else [x]
        any_video = any(s.is_video for s in expand_inputs(inputs))  # pictures: no worker process to start
        fixed = {"worker": any_video, "keep_rows": True, "json_lines": False, "timeline": False}
        chosen = Options(faces=faces, **{"progress": False, **options, **fixed})
        return self.run(inputs, chosen, tta).table

    def run(self, inputs: Sequence[Any], options: Options, tta: Any = None) -> Summary:
        """The whole pipeline with explicit ``Options`` (files, rendering; what the CLI calls)."""
        runner = self.spec.averaged_over(tta) if tta is not None else self.spec
        return predict(runner, [str(i) if isinstance(i, Path) else i for i in inputs], options)


__all__ = ["Model"]
