"""Charts of the audit report, generated as inline SVG by a small layout of our own.

No JavaScript and no network: each function takes plain numbers and labels
and returns one ``<svg>`` element as text, with every label escaped (labels
come from log entries, which are untrusted).  :func:`sankey_svg` lays out a
flow diagram in columns (source jurisdiction, destination, class, purpose),
:func:`stacked_bars_svg` draws counts over time (:func:`split_timeline_svg`: in two
panels, each on its own scale), :func:`hbar_svg` ranked bars.

Pure: this module must never do I/O or emit unescaped text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["PALETTE", "hbar_svg", "sankey_svg", "split_timeline_svg", "stacked_bars_svg"]

PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#805ad5", "#b83280", "#2c7a7b", "#975a16",
           "#4a5568", "#9b2c2c", "#276749")
_CLASS_COLOURS = {"public": "#2f855a", "protected": "#c05621", "restricted": "#9b2c2c"}
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _empty(width: int, what: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
            f'height="40" viewBox="0 0 {width} 40"><text x="8" y="24" {_FONT} fill="#666">'
            f'{_e(what)}</text></svg>')


def _colour(label: str, index: int) -> str:
    for cls, colour in _CLASS_COLOURS.items():
        if label.startswith(cls):
            return colour
    return PALETTE[index % len(PALETTE)]


def sankey_svg(flows: Sequence[Mapping[str, Any]], columns: Sequence[str], *,
               titles: Sequence[str] | None = None, width: int = 960,
               height: int = 420) -> str:
    """A flow diagram of ``flows`` through ``columns`` (keys of each flow), by ``count``.

    Args:
        flows: rows with one label per column key and a ``count``.
        columns: the keys giving each column, left to right (at least two).
        titles: column titles (default: the keys).
        width, height: the drawing size in pixels.
    """
    total = sum(int(f["count"]) for f in flows)
    if total <= 0 or len(columns) < 2:
        return _empty(width, "no flows to show")
    titles = list(titles or columns)
    values: list[dict[str, int]] = [defaultdict(int) for _ in columns]
    links: list[dict[tuple[str, str], int]] = [defaultdict(int) for _ in columns[1:]]
    for f in flows:
        labels = [str(f[c]) for c in columns]
        for i, label in enumerate(labels):
            values[i][label] += int(f["count"])
        for i in range(len(labels) - 1):
            links[i][(labels[i], labels[i + 1])] += int(f["count"])
    top, bottom, node_w, gap = 28, 8, 14, 10
    usable = height - top - bottom
    scale = min((usable - gap * (len(v) - 1)) / max(sum(v.values()), 1) for v in values)
    scale = max(scale, 0.01)
    step = (width - node_w - 160) / (len(columns) - 1)
    pos: list[dict[str, tuple[float, float, float]]] = []  # label -> (x, y, h)
    parts: list[str] = []
    colours: dict[str, str] = {}
    for i, column in enumerate(values):
        x = 10 + i * step
        y = float(top)
        placed: dict[str, tuple[float, float, float]] = {}
        for j, (label, value) in enumerate(sorted(column.items(), key=lambda kv: -kv[1])):
            h = max(value * scale, 1.5)
            placed[label] = (x, y, h)
            colours.setdefault(f"{i}:{label}", _colour(label, j + i))
            y += h + gap
        pos.append(placed)
        parts.append(f'<text x="{x:.1f}" y="16" {_FONT} font-weight="600">'
                     f'{_e(titles[i])}</text>')
    out_off: dict[tuple[int, str], float] = defaultdict(float)
    in_off: dict[tuple[int, str], float] = defaultdict(float)
    for i, column_links in enumerate(links):
        for (a, b), value in sorted(column_links.items(), key=lambda kv: -kv[1]):
            ax, ay, _ = pos[i][a]
            bx, by, _ = pos[i + 1][b]
            h = max(value * scale, 1.0)
            y0 = ay + out_off[(i, a)]
            y1 = by + in_off[(i + 1, b)]
            out_off[(i, a)] += h
            in_off[(i + 1, b)] += h
            x0, x1 = ax + node_w, bx
            mid = (x0 + x1) / 2
            d = (f"M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f} "
                 f"L{x1:.1f},{y1 + h:.1f} C{mid:.1f},{y1 + h:.1f} {mid:.1f},{y0 + h:.1f} "
                 f"{x0:.1f},{y0 + h:.1f} Z")
            parts.append(f'<path class="link" d="{d}" fill="{colours[f"{i}:{a}"]}" '
                         f'fill-opacity="0.35"><title>{_e(a)} \u2192 {_e(b)}: {value}'
                         f'</title></path>')
    for i, placed in enumerate(pos):
        for label, (x, y, h) in placed.items():
            value = values[i][label]
            parts.append(f'<rect class="node" x="{x:.1f}" y="{y:.1f}" width="{node_w}" '
                         f'height="{h:.1f}" fill="{colours[f"{i}:{label}"]}"><title>'
                         f'{_e(label)}: {value}</title></rect>')
            parts.append(f'<text x="{x + node_w + 4:.1f}" y="{y + min(h, 24) / 2 + 4:.1f}" '
                         f'{_FONT}>{_e(label)} ({value})</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart sankey" role="img" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            + "".join(parts) + "</svg>")


def stacked_bars_svg(series: Sequence[Mapping[str, Any]], keys: Sequence[str],
                     colours: Sequence[str], *, label_key: str = "start", width: int = 960,
                     height: int = 220) -> str:
    """Stacked bars of ``keys`` per item of ``series`` (e.g. decisions per time bucket)."""
    if not series or not any(int(s[k]) for s in series for k in keys):
        return _empty(width, "no decisions to show")
    left, bottom, top = 48, 36, 24
    plot_h = height - bottom - top
    peak = max(sum(int(s[k]) for k in keys) for s in series)
    bar_w = (width - left - 8) / len(series)
    parts = [f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" '
             'stroke="#999"/>',
             f'<text x="4" y="{top + 4}" {_FONT}>{peak}</text>',
             f'<text x="4" y="{top + plot_h}" {_FONT}>0</text>']
    for i, s in enumerate(series):
        x = left + i * bar_w
        y = float(top + plot_h)
        for key, colour in zip(keys, colours, strict=True):
            value = int(s[key])
            if not value:
                continue
            h = value / peak * plot_h
            y -= h
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" '
                         f'width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}" fill="{colour}">'
                         f'<title>{_e(s[label_key])} {_e(key)}: {value}</title></rect>')
    for i in (0, len(series) - 1):
        anchor = "start" if i == 0 else "end"
        x = left + i * bar_w + (0 if i == 0 else bar_w)
        parts.append(f'<text x="{x:.1f}" y="{height - 16}" {_FONT} text-anchor="{anchor}">'
                     f'{_e(series[i][label_key])}</text>')
    lx = left
    for key, colour in zip(keys, colours, strict=True):
        parts.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="13" {_FONT}>{_e(key)}</text>')
        lx += 24 + 8 * len(key)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" role="img" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            + "".join(parts) + "</svg>")


def hbar_svg(items: Sequence[tuple[str, float]], *, width: int = 960, unit: str = "",
             empty: str = "nothing to show") -> str:
    """Horizontal bars, one per ``(label, value)``, longest first as given."""
    items = [(label, value) for label, value in items if value is not None]
    if not items:
        return _empty(width, empty)
    row, label_w = 22, 320
    height = row * len(items) + 8
    peak = max(v for _, v in items) or 1
    parts = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = max(value / peak * (width - label_w - 80), 1)
        shown = label if len(label) <= 48 else label[:47] + "\u2026"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" {_FONT} text-anchor="end">'
                     f'{_e(shown)}<title>{_e(label)}</title></text>'
                     f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w:.1f}" height="16" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"><title>{_e(label)}: {value:g}{_e(unit)}'
                     f'</title></rect><text x="{label_w + w + 6:.1f}" y="{y + 14}" {_FONT}>'
                     f'{value:g}{_e(unit)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart hbars" role="img" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            + "".join(parts) + "</svg>")


def split_timeline_svg(series: Sequence[Mapping[str, Any]], *, width: int = 960) -> str:
    """Decisions over time in two panels, each on its own scale: allowed, then partial and
    denied, so that 4 denials stay visible next to 10,000 allowed decisions."""
    allowed = stacked_bars_svg(series, ["allowed"], ["#2f855a"], width=width, height=200)
    refused = stacked_bars_svg(series, ["partial", "denied"], ["#d69e2e", "#c53030"],
                               width=width, height=160) \
        if any(int(s["partial"]) or int(s["denied"]) for s in series) \
        else _empty(width, "no partial or denied decisions")
    return (f'<figure class="panel"><figcaption>allowed (scale: 0 to the busiest '
            f"bucket)</figcaption>{allowed}</figure>"
            f'<figure class="panel"><figcaption>partial and denied (own scale)</figcaption>'
            f"{refused}</figure>")
