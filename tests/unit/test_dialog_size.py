"""How big a dialog window opens: never past the smallest screen, never below the page's minimum."""

from __future__ import annotations

from trayagent.ui.dialogs import MIN_SIZE, fit_to_screen


def test_fit_to_screen() -> None:
    assert fit_to_screen((760, 760), []) == (760, 760)
    assert fit_to_screen((760, 760), [(1920, 1080)]) == (760, 760)
    assert fit_to_screen((760, 760), [(1366, 768)]) == (760, 658)  # a laptop: the buttons stay on screen
    assert fit_to_screen((760, 760), [(1920, 1080), (1024, 600)]) == (760, 490)  # the smallest screen
    assert fit_to_screen((760, 760), [(320, 240)]) == MIN_SIZE  # never below the page's minimum
