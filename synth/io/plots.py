"""The dataset card's plots: PNGs drawn headless with matplotlib, byte-identical on rebuild.

Each plot is a function of a :class:`synth.report.Summary` only, so ``synth report`` redraws the
same bytes from the same run directory: the Agg backend, matplotlib's default style (a user's
matplotlibrc does not leak in), fixed figure sizes and dpi, a fixed SVG hash salt, and no
``Software`` entry (the matplotlib version) in the PNG metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PLOTS_DIR = "plots"
DPI = 100
#: File name → (title shown in the card, what it draws).
PLOT_FILES = {
    "languages_tasks.png": "Languages and tasks",
    "scores.png": "Score histograms before and after selection",
    "lengths.png": "Instruction and response lengths",
    "rejects.png": "Rejects by stage and reason",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    plt = _pyplot()
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _barh(ax: Any, counts: Sequence[tuple[str, int]], title: str, top: int = 20) -> None:
    ax.set_title(title)
    if not counts:
        _empty(ax, "none")
        return
    shown = list(counts[:top])
    if len(counts) > top:
        shown.append((f"({len(counts) - top} more)", sum(n for _, n in counts[top:])))
    labels = [str(k) for k, _ in shown][::-1]
    values = [n for _, n in shown][::-1]
    ax.barh(range(len(values)), values, color="#4c72b0")
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.set_xlabel("rows")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v}", va="center", fontsize=7)


def _hist(ax: Any, series: dict[str, Sequence[float]], title: str, xlabel: str,
          log: bool = False) -> None:
    import numpy as np

    ax.set_title(title)
    values = [np.asarray(v, dtype=float) for v in series.values()]
    values = [v[np.isfinite(v)] for v in values]
    if not any(v.size for v in values):
        _empty(ax, "no values")
        return
    lo = min(float(v.min()) for v in values if v.size)
    hi = max(float(v.max()) for v in values if v.size)
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        lo = max(lo, 1.0)
        hi = max(hi, lo)  # every value 0 (empty responses): one bar at 1
        if hi < 2 * lo:  # all about the same length: widen so the bar sits mid-axis
            lo, hi = max(lo / 1.5, 1.0), hi * 1.5
        bins = np.geomspace(lo, hi, 41)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    for (label, _), v in zip(series.items(), values, strict=True):
        # np.histogram + stairs draws one path per series (ax.hist draws a patch per bin).
        heights, _ = np.histogram(v, bins=bins)
        ax.stairs(heights, bins, fill=True, alpha=0.6, label=f"{label} (n={v.size})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)


def _figure(ncols: int, nrows: int = 1, left: float = 0.08) -> tuple[Any, Any]:
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.6 * nrows), squeeze=False)
    # Fixed margins instead of tight_layout: as readable here, and a third of the drawing time.
    fig.subplots_adjust(left=left, right=0.97, bottom=0.16 / nrows, top=1 - 0.12 / nrows,
                        wspace=0.45, hspace=0.5)
    return fig, axes


def plot_languages_tasks(summary: Any, path: Path) -> None:
    fig, axes = _figure(2, left=0.1)
    _barh(axes[0][0], summary.languages, "Languages")
    _barh(axes[0][1], summary.tasks, "Tasks")
    _save(fig, path)


def plot_scores(summary: Any, path: Path) -> None:
    names = sorted(set(summary.scores_after) | set(summary.scores_before))
    if not names:
        fig, axes = _figure(1)
        axes[0][0].set_title("Scores")
        _empty(axes[0][0], "no scores (run synth score / filter)")
    else:
        cols = min(3, len(names))
        rows = (len(names) + cols - 1) // cols
        fig, axes = _figure(cols, rows)
        for i, name in enumerate(names):
            series: dict[str, Sequence[float]] = {}
            if summary.scores_before:
                series["before selection"] = summary.scores_before.get(name, [])
            series["in dataset"] = summary.scores_after.get(name, [])
            _hist(axes[i // cols][i % cols], series, name, "score")
        for j in range(len(names), rows * cols):
            axes[j // cols][j % cols].set_visible(False)
    _save(fig, path)


def plot_lengths(summary: Any, path: Path) -> None:
    fig, axes = _figure(2)
    _hist(axes[0][0], {"instruction": summary.instruction_lengths}, "Instruction length",
          "characters (log)", log=True)
    _hist(axes[0][1], {"response": summary.response_lengths}, "Response length",
          "characters (log)", log=True)
    _save(fig, path)


def plot_rejects(summary: Any, path: Path) -> None:
    fig, axes = _figure(1, left=0.35)
    fig.set_size_inches(8, 3.6)
    _barh(axes[0][0], summary.rejects, "Rejects (stage: reason)")
    _save(fig, path)


_DRAW: dict[str, Callable[[Any, Path], None]] = {
    "languages_tasks.png": plot_languages_tasks,
    "scores.png": plot_scores,
    "lengths.png": plot_lengths,
    "rejects.png": plot_rejects,
}


def draw_all(summary: Any, out_dir: Path) -> list[str]:
    """Draw every plot into ``out_dir`` (created); returns the file names written."""
    import matplotlib

    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    with plt.style.context("default"), matplotlib.rc_context({
        "svg.hashsalt": "synth", "figure.dpi": DPI, "savefig.dpi": DPI,
        "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False,
    }):
        for name, draw in _DRAW.items():
            draw(summary, out_dir / name)
    return list(_DRAW)
