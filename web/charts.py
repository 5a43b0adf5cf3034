"""Charts rendered on the server as inline SVG (pygal): no JavaScript, no CDN, works offline."""

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

_STYLE_ARGS: dict[str, Any] = dict(
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
STYLE = Style(**_STYLE_ARGS)
PALETTE: tuple[str, ...] = _STYLE_ARGS["colors"]

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
    width: int = 900,
    formatter: Callable[[float], str] | None = None,
    colors: Sequence[str] | None = None,
) -> SafeString:
    """``colors``: one per series, so that a product keeps its colour from chart to chart."""
    return _bars(
        pygal.StackedBar, title, labels, series, y_title, height,
        width=width, formatter=formatter, colors=colors,
    )  # fmt: skip


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
    *,
    width: int = 900,
    formatter: Callable[[float], str] | None = None,
    colors: Sequence[str] | None = None,
) -> SafeString:
    options = dict(_COMMON)
    if width < 700:  # a half-width chart: product names do not fit two to a row
        options["legend_at_bottom_columns"] = 1
    if colors:
        options["style"] = Style(**{**_STYLE_ARGS, "colors": tuple(colors)})
    chart = kind(title=title, height=height, width=width, y_title=y_title, **options)
    if formatter is not None:
        chart.value_formatter = formatter
    return _render(_fill(chart, labels, series))


# Used: a light filled area underneath; reserved: a dark dashed line drawn over it. pygal
# sets a path's width from the style (a series' own width loses to it in its CSS).
RESERVED_STYLE = Style(
    **{
        **_STYLE_ARGS,
        "colors": ("#93c5fd", "#b91c1c", "#ea580c", "#7c3aed", "#0f766e"),
        "stroke_width": 3,
        "opacity": 0.55,
    }
)


def reserved_vs_used(
    *,
    title: str,
    labels: Sequence[str],
    stack: Mapping[str, Sequence[Decimal]],
    used: Sequence[Decimal],
    y_title: str,
    formatter: Callable[[float], str] | None = None,
) -> SafeString:
    """Used as a filled area, and over it each reservation of the stack as a thick dashed
    line at the top of its share (the last one is R(h), what usage nets against), so the
    reserved level stays visible where usage sits on it or below it; bursts rise above it."""
    chart = pygal.Line(
        title=title,
        height=320,
        width=900,
        y_title=y_title,
        fill=True,
        interpolate=None,
        show_dots=False,
        include_x_axis=True,
        **{**_COMMON, "style": RESERVED_STYLE},
    )
    if formatter is not None:
        chart.value_formatter = formatter
    _fill(chart, labels, {})
    chart.add("used", [float(v) for v in used])
    running = [0.0] * len(labels)
    for name, values in stack.items():
        running = [r + float(v) for r, v in zip(running, values, strict=True)]
        chart.add(name, list(running), fill=False, stroke_style={"dasharray": "12, 6"})
    return _render(chart)


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
