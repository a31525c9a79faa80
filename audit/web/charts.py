"""The workspace's two charts, drawn on the server as SVG (no script).

Every text goes through ``escape``; colours come from ``audit.overview``.
SVG presentation attributes (fill, stroke) are not styles, so the page's
Content-Security-Policy (no inline style) allows them.
"""

from __future__ import annotations

import datetime as dt
from html import escape

from audit.overview import EVIDENCE_KINDS

KIND_COLOURS = {"fill": "#6f9ec2", "session": "#1d5c3a", "event": "#a3261b",
                "diagnosis": "#5b3f8c", "assessment": "#8a5a00"}  # fmt: skip


def trend(data: dict, width: int = 760, height: int = 240) -> str:
    """Rates by quarter, as ``audit.overview.trend`` gives them."""
    periods, series = data["periods"], data["series"]
    left, right, top, bottom = 48, 12, 10, 28
    w, h = width - left - right, height - top - bottom
    top_rate = max([r for s in series for r in s["rates"] if r is not None] or [0.01])
    step = w / max(1, len(periods) - 1)

    def x(i: int) -> float:
        return left + i * step

    def y(rate: float) -> float:
        return top + h - h * rate / top_rate

    out = [f'<svg class="trend" viewBox="0 0 {width} {height}" role="img"'
           ' aria-label="Rate of each rule by quarter">']  # fmt: skip
    for k in range(5):
        r = top_rate * k / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(r):.1f}" y2="{y(r):.1f}"'
                   f' stroke="#e3e7ee"/><text x="{left - 6}" y="{y(r) + 4:.1f}"'
                   f' text-anchor="end" font-size="11">{100 * r:.1f}%</text>')  # fmt: skip
    for i, p in enumerate(periods):
        if len(periods) <= 12 or i % 2 == 0 or i == len(periods) - 1:
            out.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle"'
                       f' font-size="11">{escape(p)}</text>')  # fmt: skip
    for s in series:
        pts = [(x(i), y(r)) for i, r in enumerate(s["rates"]) if r is not None]
        if not pts:
            continue
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{escape(s["colour"])}"'
                   f' stroke-width="2"><title>{escape(s["title"])}</title></polyline>')  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def timeline(items: list[dict], index_date: dt.date | None, case_date: dt.date | None,
             width: int = 760) -> str:  # fmt: skip
    """The evidence of one case: fills as bars of their covered days,
    sessions as ticks, events, diagnoses and assessments as labelled markers,
    the PTSD index date and the case date as labelled lines."""
    labels: list[str] = []
    for it in items:
        if it["label"] not in labels:
            labels.append(it["label"])
    days = [d for it in items for d in (it["start_on"], it["end_on"])]
    days += [d for d in (index_date, case_date) if d is not None]
    if not days:
        return '<p class="muted">No evidence row to draw.</p>'
    lo, hi = min(days) - dt.timedelta(days=7), max(days) + dt.timedelta(days=7)
    span = max(1, (hi - lo).days)
    label_w, top, row_h = 330, 34, 22
    w = width - label_w - 12
    height = top + row_h * max(1, len(labels)) + 30

    def x(day: dt.date) -> float:
        return label_w + w * (day - lo).days / span

    out = [f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img"'
           ' aria-label="Evidence timeline">']  # fmt: skip
    for i, label in enumerate(labels):
        yy = top + i * row_h + row_h / 2
        short = label if len(label) <= 56 else label[:55] + "\u2026"
        out.append(f'<text x="{label_w - 8}" y="{yy + 4:.1f}" text-anchor="end"'
                   f' font-size="11">{escape(short)}<title>{escape(label)}</title></text>'
                   f'<line x1="{label_w}" x2="{width - 12}" y1="{yy:.1f}" y2="{yy:.1f}"'
                   ' stroke="#eef0f4"/>')  # fmt: skip
    for it in items:
        kind = EVIDENCE_KINDS[it["kind"]] if 0 <= it["kind"] < len(EVIDENCE_KINDS) else "event"
        colour = KIND_COLOURS[kind]
        yy = top + labels.index(it["label"]) * row_h + row_h / 2
        x0 = x(it["start_on"])
        tip = escape(f"{it['label']}: {it['start_on']}"
                     + (f" to {it['end_on']}" if it["end_on"] != it["start_on"] else ""))  # fmt: skip
        if kind == "fill":
            x1 = x(it["end_on"] + dt.timedelta(days=1))
            out.append(f'<rect class="ev-fill" x="{x0:.1f}" y="{yy - 6:.1f}"'
                       f' width="{max(1.5, x1 - x0):.1f}" height="12" fill="{colour}"'
                       f' fill-opacity="0.75"><title>{tip}</title></rect>')  # fmt: skip
        elif kind == "session":
            out.append(f'<line class="ev-session" x1="{x0:.1f}" x2="{x0:.1f}" y1="{yy - 8:.1f}"'
                       f' y2="{yy + 8:.1f}" stroke="{colour}" stroke-width="2">'
                       f"<title>{tip}</title></line>")  # fmt: skip
        elif kind == "diagnosis":
            out.append(f'<rect class="ev-diagnosis" x="{x0 - 5:.1f}" y="{yy - 5:.1f}" width="10"'
                       f' height="10" fill="{colour}"><title>{tip}</title></rect>')  # fmt: skip
        elif kind == "assessment":
            out.append(f'<circle class="ev-assessment" cx="{x0:.1f}" cy="{yy:.1f}" r="5"'
                       f' fill="{colour}"><title>{tip}</title></circle>')  # fmt: skip
        else:
            out.append(f'<polygon class="ev-event" points="{x0:.1f},{yy - 7:.1f}'
                       f" {x0 + 7:.1f},{yy:.1f} {x0:.1f},{yy + 7:.1f} {x0 - 7:.1f},{yy:.1f}\""
                       f' fill="{colour}"><title>{tip}</title></polygon>')  # fmt: skip
    for day, name, colour, row in ((index_date, "PTSD index date", "#a3261b", 0),
                                   (case_date, "case date", "#1d2a33", 1)):  # fmt: skip
        if day is None:
            continue
        xx = x(day)
        anchor = "end" if xx > width - 160 else "start"
        dx = -4 if anchor == "end" else 4
        out.append(f'<line class="mark" x1="{xx:.1f}" x2="{xx:.1f}" y1="{top - 4}"'
                   f' y2="{height - 26}" stroke="{colour}" stroke-dasharray="4 3"/>'
                   f'<text x="{xx + dx:.1f}" y="{12 + 13 * row}" text-anchor="{anchor}"'
                   f' font-size="11" fill="{colour}">{escape(name)} {day}</text>')  # fmt: skip
    for frac, anchor in ((0, "start"), (0.25, "middle"), (0.5, "middle"), (0.75, "middle"),
                         (1, "end")):  # fmt: skip
        day = lo + dt.timedelta(days=round(span * frac))
        out.append(f'<text x="{x(day):.1f}" y="{height - 8}" text-anchor="{anchor}"'
                   f' font-size="10">{day}</text>')  # fmt: skip
    out.append("</svg>")
    return "".join(out)
