"""Charts for the reports, drawn with matplotlib as SVG with text turned into paths.

Text as paths means the chart needs no font on the reader's machine: a signed report looks
the same everywhere. Labels use Noto Sans CJK (Debian ``fonts-noto-cjk``) for Chinese.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import font_manager

CJK_FONT = "Noto Sans CJK SC"


def _setup() -> None:
    names = {f.name for f in font_manager.fontManager.ttflist}
    if CJK_FONT not in names:
        raise RuntimeError(f"font {CJK_FONT!r} not found: install Debian fonts-noto-cjk "
                           "(scripts/setup does)")
    plt.rcParams.update({"font.family": CJK_FONT, "svg.fonttype": "path",
                         "axes.unicode_minus": False})


def bar_chart_svg(bars: Sequence[tuple[str, float]], title: str, unit: str,
                  colors: Sequence[str] = ("#2f7d4f",)) -> str:
    """A bar chart as an SVG document; ``bars`` are (label, value [unit])."""
    _setup()
    fig, ax = plt.subplots(figsize=(6.4, 2.6), dpi=100)
    labels = [b[0] for b in bars]
    values = [b[1] for b in bars]
    ax.bar(labels, values, color=[colors[i % len(colors)] for i in range(len(bars))])
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()
