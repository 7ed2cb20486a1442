"""The colours of a report's models: fixed by the report's model order, the same in every figure and in report.html.
A module of its own so that the process writing the report never imports matplotlib (its figures are drawn by
drawing.py's processes)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Okabe & Ito (2008), the colour-blind-safe qualitative palette
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
LINE_STYLES = ("-", "--", ":", "-.")


@dataclass
class Palette:
    """The colour (and, past eight, line style) of every model of a report, fixed by the report's model order so a
    model looks the same in every figure; any other series takes the next one by first use."""

    order: list[str] = field(default_factory=list)

    def style(self, name: object) -> dict[str, object]:
        key = str(name)
        if key not in self.order:
            self.order.append(key)
        i = self.order.index(key)
        return {"color": OKABE_ITO[i % len(OKABE_ITO)], "linestyle": LINE_STYLES[(i // len(OKABE_ITO)) % 4]}
