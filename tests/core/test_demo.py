"""Demo frames on demand: spread over the photos, gone when the caller is done."""

from __future__ import annotations

from toolkit.core.demo import DEMO_PHOTOS, frames_or_demo
from toolkit.core.frames import discover_frames


def test_demo_frames_spread_over_the_photos_and_are_removed(tmp_path):
    with frames_or_demo(None, 7) as frames:
        root = frames[0].root
        assert len(frames) == 7 and all(f.path.is_file() for f in frames)
        assert [f.sequence for f in frames[:5]] == sorted(DEMO_PHOTOS)  # one window of each first
        assert {f.rel.name for f in frames[5:]} == {"00000001.png"}
    assert not root.exists()


def test_a_frames_folder_gives_its_first_frames(demo_dir):
    with frames_or_demo(demo_dir, 3) as frames:
        assert frames == discover_frames(demo_dir)[:3]
    with frames_or_demo(demo_dir) as frames:
        assert frames == discover_frames(demo_dir)
