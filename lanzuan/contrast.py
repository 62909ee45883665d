"""WCAG 2.x colour contrast, for tenants' brand colours.

A brand colour is the background of white text (the page header, the buttons) and
the colour of links and outlined buttons on white, so both need the same thing: a
contrast of at least 4.5:1 with white (WCAG AA for normal text). Pure functions on
"#RRGGBB" strings; no Django.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

AA_NORMAL = 4.5
WHITE = "#FFFFFF"
# The pages' body text colour (optout.css --ink): the dark choice for text on light colours.
INK = "#1F2328"

_HEX = re.compile(r"^#([0-9A-Fa-f]{6})$")


def parse(colour: str) -> tuple[int, int, int]:
    """ "#1F4FD8" → (31, 79, 216). Raises ValueError on anything else."""
    match = _HEX.match(colour or "")
    if not match:
        raise ValueError(f"not a #RRGGBB colour: {colour!r}")
    value = match.group(1)
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def to_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: str) -> float:
    r, g, b = parse(colour)
    return 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)


def contrast_ratio(first: str, second: str) -> float:
    """From 1.0 (the same) to 21.0 (black on white); symmetric."""
    a, b = relative_luminance(first), relative_luminance(second)
    lighter, darker = max(a, b), min(a, b)
    return (lighter + 0.05) / (darker + 0.05)


def passes(colour: str, against: str = WHITE, minimum: float = AA_NORMAL) -> bool:
    return contrast_ratio(colour, against) >= minimum


def shown_ratio(ratio: float) -> str:
    """The ratio as a person reads it, to two decimals rounded down, so that a failing
    4.499 never reads "4.50"."""
    return f"{math.floor(ratio * 100) / 100:.2f}"


def nearest_darker_passing(colour: str, against: str = WHITE, minimum: float = AA_NORMAL) -> str:
    """The lightest shade of `colour` (same hue and saturation, less brightness: every
    channel scaled by the same factor) that reaches `minimum` against `against`. The
    colour itself when it already passes; black at the end of the scale always does
    for a light `against`."""
    if passes(colour, against, minimum):
        return to_hex(parse(colour))
    rgb = parse(colour)
    top = max(rgb)
    # Brightness (the largest channel) from just below the colour's own down to 0:
    # the first shade that passes is the nearest one.
    for value in range(top - 1, -1, -1):
        factor = value / top
        shade = to_hex((round(rgb[0] * factor), round(rgb[1] * factor), round(rgb[2] * factor)))
        if passes(shade, against, minimum):
            return shade
    return "#000000"


def text_on(background: str) -> str:
    """White or the pages' near-black ink, whichever reads better on `background`."""
    return WHITE if contrast_ratio(background, WHITE) >= contrast_ratio(background, INK) else INK


# The opt-out pages' background (optout.css --bg): links sit on it as well as on white cards.
PAGE_BACKGROUND = "#F6F8FA"


@dataclass(frozen=True)
class BrandPalette:
    surface: str  # background of the header and the buttons
    on_surface: str  # text on it
    text: str  # links and outlined buttons, on white or the page background


def brand_palette(colour: str, fallback: str = "#1F4FD8") -> BrandPalette:
    """Colours the pages use for a brand colour so that no text is below 4.5:1, whatever
    was stored (colours saved before they were checked, or set outside the admin): white
    text if it passes, else near-black ink if that passes (a light colour), else the
    nearest darker shade with white text."""
    try:
        parse(colour)
    except ValueError:
        colour = fallback
    colour = to_hex(parse(colour))
    if passes(colour, WHITE):
        surface, on_surface = colour, WHITE
    elif passes(colour, INK):
        surface, on_surface = colour, INK
    else:
        surface, on_surface = nearest_darker_passing(colour, WHITE), WHITE
    return BrandPalette(surface, on_surface, nearest_darker_passing(colour, PAGE_BACKGROUND))
