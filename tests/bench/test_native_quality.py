"""bench.native_quality: native windows (never resized) and the per-character summary."""

import numpy as np

from bench.native_quality import summary
from training.photoset import centre_window


def test_centre_window_is_cut_at_native_scale_or_turned_or_refused():
    image = np.arange(800 * 1400 * 3, dtype=np.uint32).reshape(800, 1400, 3).astype(np.uint8)
    win = centre_window(image, (720, 1280))
    assert win.shape == (720, 1280, 3)
    np.testing.assert_array_equal(win, image[40:760, 60:1340])  # a window, not a resize
    assert centre_window(np.zeros((1400, 800, 3), np.uint8), (720, 1280)).shape == (1280, 720, 3)
    assert centre_window(np.zeros((700, 1400, 3), np.uint8), (720, 1280)) is None


def test_summary_counts_worse_frames_per_character():
    rows = [
        {"photo": "a", "character": "crisp", "kernel": "k7", "input": 30.0, "native": 36.0,
         "resize": 25.0, "prior": 35.0},
        {"photo": "b", "character": "soft", "kernel": "k7", "input": 40.0, "native": 39.5,
         "resize": 33.0, "prior": 41.0},
        {"photo": "b", "character": "soft", "kernel": "sharp", "input": 100.0, "native": 99.95},
    ]
    s = summary(rows)
    assert s["all"]["k7"]["photos"] == 2 and s["all"]["k7"]["worse"] == 1
    assert s["all"]["k7"]["worst_photo"] == "b" and s["all"]["k7"]["worst_gain"] == -0.5
    assert s["crisp"]["k7"]["gain"] == 6.0 and s["soft"]["k7"]["resize"] == 33.0
    assert s["soft"]["sharp"]["worse"] == 0  # -0.05 dB is within the 0.1 dB rule
    assert "resize" not in s["soft"]["sharp"]
