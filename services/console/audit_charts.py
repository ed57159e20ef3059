"""Bar charts of the report's figures, drawn on the server as inline SVG: a group of bars per row
of a figure, a bar per value column. Only the geometry is computed here; the template writes
the SVG with its title and description, a title on every bar saying its number, and the legend
as text (the numbers are also in the figure's table beside it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# At least 3:1 against white (WCAG 1.4.11, graphical objects), and apart from one another.
COLOURS = ("#0a4a8f", "#b34700", "#1b6b2f", "#6a3d9a", "#7a4f00", "#4d4d4d")
WIDTH = 720
HEIGHT = 300
LEFT = 110  # room for the axis' numbers
BOTTOM = 40  # room for the groups' names
TOP = 12
TICKS = 4


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    says: str  # what a screen reader or a pointer's tooltip tells: group, series, number


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Group:
    x: float  # the middle of its bars
    label: str


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    description: str
    bars: list[Bar]
    ticks: list[Tick]
    groups: list[Group]
    legend: list[tuple[str, str]]  # (series name, colour)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    base: float = HEIGHT - BOTTOM


def nice_step(largest: float) -> int:
    """The axis' step: a quarter of the largest value, rounded up to 1, 2 or 5 times a power
    of ten, so that every tick is a round number."""
    wanted = largest / TICKS
    step = 1
    while True:
        for multiple in (1, 2, 5):
            if step * multiple >= wanted:
                return step * multiple
        step *= 10


def bar_chart(
    key: str,
    title: str,
    description: str,
    groups: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[float]],
    written: Callable[[float], str],
) -> Chart:
    """``values[g][s]``: the number of series ``s`` in group ``g``; ``written`` writes a number
    as the page does (rupiah, or a count)."""
    top = TICKS * nice_step(max((v for row in values for v in row), default=0))
    plot_width = WIDTH - LEFT - 8
    plot_height = HEIGHT - BOTTOM - TOP
    slot = plot_width / max(1, len(groups))
    width = slot * 0.8 / max(1, len(series))
    bars, middles = [], []
    for g, (group, row) in enumerate(zip(groups, values, strict=True)):
        start = LEFT + g * slot + slot * 0.1
        middles.append(Group(start + width * len(series) / 2, group))
        for s, (name, value) in enumerate(zip(series, row, strict=True)):
            height = plot_height * max(0.0, value) / top
            bars.append(
                Bar(
                    start + s * width,
                    HEIGHT - BOTTOM - height,
                    width,
                    height,
                    COLOURS[s % len(COLOURS)],
                    f"{group}, {name}: {written(value)}",
                )
            )
    ticks = [
        Tick(HEIGHT - BOTTOM - plot_height * n / TICKS, written(top * n / TICKS))
        for n in range(TICKS + 1)
    ]
    legend = [(name, COLOURS[s % len(COLOURS)]) for s, name in enumerate(series)]
    return Chart(key, title, description, bars, ticks, middles, legend)
