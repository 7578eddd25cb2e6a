"""Charts as SVG drawn on the server: no script, nothing fetched. Each chart has a
<title> and an aria-label; the page shows the same figures in a table next to it
(the table is what a screen reader reads; the chart is role="img")."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

# Distinguishable on white, and in greyscale by order (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")


def stacked_bars(title: str, labels: list[str], series: list[tuple[str, list[int]]],
                 width: int = 760, height: int = 260) -> Markup:
    """One bar per label, stacked by series (name, one value per label), a legend
    below. Labels are shown every few bars so they do not overlap."""
    left, top, bottom = 36, 10, 40
    legend_h = 18 * ((len(series) + 3) // 4)
    plot_w, plot_h = width - left - 10, height - top - bottom
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    peak = max([*totals, 1])
    step = plot_w / max(len(labels), 1)
    bar_w = max(step * 0.7, 1.0)
    every = max(1, len(labels) // 10)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {width} {height + legend_h}" width="{width}" '
             f'height="{height + legend_h}" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - 10}" '
             f'y2="{top + plot_h}" stroke="#4a5360"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>']
    for i, label in enumerate(labels):
        x = left + i * step + (step - bar_w) / 2
        y = float(top + plot_h)
        for k, (_name, values) in enumerate(series):
            h = plot_h * values[i] / peak
            if h <= 0:
                continue
            y -= h
            # No <title> per bar: at 50 reps x 30 days that is most of the page's
            # weight, and the table beside the chart has every figure.
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[k % len(PALETTE)]}"/>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    for k, (name, _) in enumerate(series):
        lx = left + (k % 4) * (plot_w / 4)
        ly = height + 18 * (k // 4)
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 10}" width="10" height="10" '
                     f'fill="{PALETTE[k % len(PALETTE)]}"/>'
                     f'<text x="{lx + 14:.1f}" y="{ly}">{escape(name)}</text>')
    parts.append("</svg>")
    # Every text and attribute above is a number or passed through html.escape.
    return Markup("".join(parts))  # noqa: S704
