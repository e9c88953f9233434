"""Every input of `emoframe predict` gets at least one row saying what happened to it:
a truncated mp4, a sound-only mp4 and a decompression bomb are `status=unreadable` rows with their reason."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from emoframe.cli import main
from emoframe.files.pictures import ENV
from emoframe.inference.sources import read_image
from tests.fixtures.bad_inputs import bomb_png, sound_only_mp4, truncated_mp4
from tests.inference.conftest import paste_faces

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_decompression_bomb_is_unreadable_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = bomb_png(tmp_path / "bomb.png")
    image, reason = read_image(bomb)
    assert image is None and "too large (400000000 pixels" in reason and ENV in reason
    monkeypatch.setenv(ENV, "100")  # the one setting: a 10x11 picture is now over it, a 10x10 one is not
    small = tmp_path / "small.png"
    from PIL import Image

    Image.new("L", (10, 11)).save(small)
    assert "too large (110 pixels, more than 100; raise EMOFRAME_MAX_PIXELS" in read_image(small)[1]
    Image.new("L", (10, 10)).save(small)
    assert read_image(small)[0] is not None


@pytest.mark.parametrize("bad", ["truncated", "sound_only", "bomb"])
def test_every_input_gets_a_row(
    bad: str, task_checkpoints, videos, fer_faces, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make = {
        "truncated": lambda p: truncated_mp4(videos["angry"], p.with_suffix(".mp4")),
        "sound_only": lambda p: sound_only_mp4(videos["angry"], p.with_suffix(".mp4")),
        "bomb": lambda p: bomb_png(p.with_suffix(".png")),
    }
    path = make[bad](tmp_path / bad)
    (good,) = paste_faces(fer_faces[:1], tmp_path / "good")
    out = tmp_path / "rows.csv"
    args = ["predict", "--no-progress", "--ckpt", str(task_checkpoints["frame_classifier"]), str(good), str(path)]
    assert main([*args, "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "skipped 1 unreadable" in err, err
    rows = {r["source"]: r for r in rows_of(out)}
    assert set(rows) == {str(good), str(path)}
    row = rows[str(path)]
    assert row["status"] == "unreadable" and row["error"] and row["prediction"] == "", row
    assert rows[str(good)]["error"] == ""
