"""matplotlib figures, drawing only: anyone may call them (fit, lr-find, search, the report).

Each figure function takes plain numbers and returns a matplotlib Figure; `save_png` writes one
to a file atomically and `svg_bytes` gives the SVG that an HTML report embeds.
"""

from pretune.plots.canvas import save_png, svg_bytes
from pretune.plots.curves import learning_curves, lr_range_test, lr_schedule, plot_run

__all__ = ["learning_curves", "lr_range_test", "lr_schedule", "plot_run", "save_png", "svg_bytes"]
