"""What the evaluation verbs return: their figures and the files they wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EvalResult:
    """Figures of a ``validate``/``test`` (``test/acc``, and ``test_tta/acc`` with TTA) and where reports went."""

    metrics: dict[str, float] = field(default_factory=dict)
    report_dir: Path | None = None
    probabilities: Path | None = None
    predictions: Path | None = None

    def lines(self) -> list[str]:
        """What ``emoframe test``/``validate``/``predict`` print: where the files went, then each figure."""
        out = [f"Predictions: {self.predictions}"] if self.predictions else []
        out += [f"Reports: {self.report_dir}"] if self.report_dir and self.metrics else []
        out += [f"{key}\t{value:.4f}" for key, value in sorted(self.metrics.items())]
        if (
            self.report_dir is not None
            and (self.report_dir / "test_tta.csv").is_file()
            and "test_tta/acc" in self.metrics
        ):
            out.append(f"TTA report: {self.report_dir / 'test_tta.csv'}")
        return out + ([f"Probabilities: {self.probabilities}"] if self.probabilities else [])
