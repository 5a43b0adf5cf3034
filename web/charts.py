"""Charts rendered on the server as inline SVG (pygal): no JavaScript, no CDN, works offline."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1f2937",
    foreground_strong="#111827",
    foreground_subtle="#6b7280",
    colors=("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"),
    font_family="system-ui, -apple-system, Segoe UI, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    title_font_size=14,
)

_COMMON = {
    "style": STYLE,
    "js": [],  # pygal's tooltips load a script from a CDN; the pages stay self-contained.
    "disable_xml_declaration": True,
    "explicit_size": False,
    "legend_at_bottom": True,
    "legend_at_bottom_columns": 2,
    "x_label_rotation": 30,
    "print_values": False,
    "show_minor_x_labels": True,
    "truncate_legend": 60,
}


def _fill(
    chart: Any, labels: Sequence[str], series: dict[str, Sequence[Decimal | float | None]]
) -> Any:
    """Labels (thinned out when many) and one series per name; SVG needs floats."""
    chart.x_labels = list(labels)
    if len(labels) > 16:
        chart.x_labels_major_every = max(1, len(labels) // 10)
        chart.show_minor_x_labels = False
    for name, values in series.items():
        chart.add(name, [float(v) if v is not None else None for v in values])
    return chart


def _render(chart: pygal.graph.graph.Graph) -> SafeString:
    return mark_safe(chart.render(is_unicode=True))  # noqa: S308 - SVG made by pygal from our data


def stacked_bars(
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[Decimal | float | None]],
    y_title: str = "",
    height: int = 320,
) -> SafeString:
    return _bars(pygal.StackedBar, title, labels, series, y_title, height)


def bars(
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[Decimal | float | None]],
    y_title: str = "",
    height: int = 320,
) -> SafeString:
    """Side-by-side bars per label: to compare a few series month by month."""
    return _bars(pygal.Bar, title, labels, series, y_title, height)


def _bars(
    kind: Any,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[Decimal | float | None]],
    y_title: str,
    height: int,
) -> SafeString:
    chart = kind(title=title, height=height, width=900, y_title=y_title, **_COMMON)
    return _render(_fill(chart, labels, series))


def lines(
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[Decimal | float | None]],
    y_title: str = "",
    height: int = 320,
    fill: bool = False,
) -> SafeString:
    chart = pygal.Line(
        title=title,
        height=height,
        width=900,
        y_title=y_title,
        fill=fill,
        interpolate=None,
        show_dots=len(labels) <= 60,
        include_x_axis=True,
        **_COMMON,
    )
    return _render(_fill(chart, labels, series))


def stacked_reserved(
    *,
    title: str,
    labels: Sequence[str],
    stack: dict[str, Sequence[Decimal]],
    used: Sequence[Decimal],
    y_title: str = "",
    height: int = 320,
) -> SafeString:
    """Reserved capacity as stacked bands (one per reservation, in ``stack``'s order from the
    bottom) under the line of what was used."""
    chart = pygal.Line(
        title=title,
        height=height,
        width=900,
        y_title=y_title,
        interpolate=None,
        show_dots=False,
        include_x_axis=True,
        **_COMMON,
    )
    chart.x_labels = list(labels)
    if len(labels) > 16:
        chart.x_labels_major_every = max(1, len(labels) // 10)
        chart.show_minor_x_labels = False
    tops: list[tuple[str, list[float]]] = []
    running = [0.0] * len(labels)
    for name, values in stack.items():
        running = [r + float(v) for r, v in zip(running, values, strict=True)]
        tops.append((name, running))
    # Each band is filled down to zero, so the highest is drawn first and the lower ones on it.
    for name, band in reversed(tops):
        chart.add(name, band, fill=True)
    chart.add("used", [float(v) for v in used], fill=False, stroke_style={"width": 2})
    return _render(chart)
