#!/usr/bin/env python3
"""Draws what monitoring/zkop-dashboard.json shows as an SVG picture, from
scrapes of zkop's /metrics, with no Grafana: docs/dashboard.svg is made this
way (docs/operations.md#dashboard).

    render-dashboard.py DASHBOARD.json SCRAPES_DIR OUT.svg --cluster NAME

SCRAPES_DIR holds one Prometheus text scrape per file, named by the Unix
second it was taken (`1796263000.prom`). The expressions are evaluated by a
small subset of PromQL, enough for the dashboard's own: a selector with
matchers, `rate(...[w])`, `sum`/`max` with `by (...)`, `== 1`, `* 60`,
`(... - time()) / 86400`, and one division of two such expressions.
"""

import html
import json
import re
import sys
from pathlib import Path

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
MATCHER = re.compile(r'(\w+)\s*(=~|!=|=)\s*"([^"]*)"')
COLORS = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0"]


def load_scrapes(directory):
    """[(t, [(name, labels, value)])] sorted by time."""
    scrapes = []
    for f in sorted(Path(directory).glob("*.prom")):
        samples = []
        for line in f.read_text().splitlines():
            m = SAMPLE.match(line.strip())
            if not m or line.startswith("#"):
                continue
            labels = dict(LABEL.findall(m.group(3) or ""))
            try:
                samples.append((m.group(1), labels, float(m.group(4))))
            except ValueError:
                continue
        scrapes.append((int(f.stem), samples))
    return scrapes


def select(samples, metric, matchers):
    out = []
    for name, labels, value in samples:
        if name != metric:
            continue
        ok = True
        for key, op, want in matchers:
            have = labels.get(key, "")
            if op == "=" and have != want or op == "!=" and have == want:
                ok = False
            if op == "=~" and not re.fullmatch(want, have):
                ok = False
        if ok:
            out.append((labels, value))
    return out


def evaluate(expr, scrapes, cluster):
    """{series key (tuple of label pairs): [(t, value)]} for one expression."""
    expr = expr.replace("$cluster", cluster).strip()
    if ") / sum by" in expr:
        left, right = expr.split(") / sum by", 1)
        a = evaluate(left + ")", scrapes, cluster)
        b = evaluate("sum by" + right, scrapes, cluster)
        out = {}
        for key, points in a.items():
            den = dict(b.get(key, []))
            out[key] = [(t, v / den[t]) for t, v in points if den.get(t)]
        return out
    days = re.fullmatch(r"\((.*) - time\(\)\) / 86400", expr)
    if days:
        inner = evaluate(days.group(1), scrapes, cluster)
        return {k: [(t, (v - t) / 86400) for t, v in p] for k, p in inner.items()}
    scale = 1.0
    m = re.fullmatch(r"(.*) \* (\d+)", expr)
    if m:
        expr, scale = m.group(1).strip(), float(m.group(2))
    only_one = expr.endswith("== 1")
    expr = expr.removesuffix("== 1").strip()
    agg, by = None, None
    m = re.fullmatch(r"(sum|max)(?: by \(([\w, ]+)\))? ?\((.*)\)", expr)
    if m:
        agg, by, expr = m.group(1), m.group(2), m.group(3).strip()
    rate = False
    m = re.fullmatch(r"rate\((.*)\[\w+\]\)", expr)
    if m:
        rate, expr = True, m.group(1)
    m = re.fullmatch(r"(\w+)(?:\{(.*)\})?", expr)
    if not m:
        return {}
    metric, matchers = m.group(1), MATCHER.findall(m.group(2) or "")
    series = {}
    previous = None
    for t, samples in scrapes:
        now = {tuple(sorted(l.items())): v for l, v in select(samples, metric, matchers)}
        if rate:
            if previous is None:
                previous = (t, now)
                continue
            t0, before = previous
            previous = (t, now)
            now = {k: max(v - before.get(k, v), 0) / max(t - t0, 1) for k, v in now.items()}
        grouped = {}
        for key, v in now.items():
            labels = dict(key)
            if agg:
                gk = tuple((n, labels.get(n, "")) for n in (by or "").replace(" ", "").split(",") if n)
                if agg == "sum":
                    grouped[gk] = grouped.get(gk, 0.0) + v
                else:
                    grouped[gk] = max(grouped.get(gk, v), v)
            else:
                grouped[key] = v
        for key, v in grouped.items():
            v *= scale
            if only_one and v != 1:
                continue
            series.setdefault(key, []).append((t, v))
    return series


def legend(fmt, key):
    labels = dict(key)
    return re.sub(r"\{\{(\w+)\}\}", lambda m: labels.get(m.group(1), ""), fmt) or "value"


def color_for(value, defaults):
    steps = defaults.get("thresholds", {}).get("steps")
    if not steps:
        return "#1f78c1"
    color = steps[0]["color"]
    for s in steps[1:]:
        if value >= s["value"]:
            color = s["color"]
    return {"red": "#c4162a", "green": "#37872d", "orange": "#e0752d"}.get(color, color)


def number(v, unit):
    if abs(v) >= 100 or v == int(v):
        text = f"{v:.0f}"
    elif abs(v) >= 1:
        text = f"{v:.1f}"
    else:
        text = f"{v:.3f}"
    return text + {"s": " s", "d": " d"}.get(unit or "", "")


def draw_stat(p, series, x, y, w, h, out):
    defaults = p["fieldConfig"]["defaults"]
    last = [(legend(p["targets"][0]["legendFormat"], k), pts[-1][1]) for k, pts in series.items() if pts]
    if not last:
        out.append(f'<text x="{x + w / 2}" y="{y + h / 2 + 10}" class="none">no data</text>')
        return
    name, value = last[0]
    text = name if p["options"].get("textMode") == "value_and_name" else number(value, defaults.get("unit"))
    fill = color_for(value, defaults) if "thresholds" in defaults else "#1f60c4"
    if p["options"].get("textMode") == "value_and_name":
        fill = {"Running": "#37872d", "QuorumLost": "#c4162a"}.get(name, "#e0752d")
    out.append(f'<rect x="{x + 6}" y="{y + 30}" width="{w - 12}" height="{h - 38}" rx="3" fill="{fill}"/>')
    out.append(f'<text x="{x + w / 2}" y="{y + h / 2 + 18}" class="stat">{html.escape(text)}</text>')


def draw_series(p, lines, x, y, w, h, t0, t1, out):
    unit = p["fieldConfig"]["defaults"].get("unit")
    points = [v for _, pts, _ in lines for _, v in pts]
    if not points:
        out.append(f'<text x="{x + w / 2}" y="{y + h / 2 + 10}" class="none">no data</text>')
        return
    top = max(max(points), 0) * 1.15 or 1
    bottom = min(min(points), 0)
    left, right, up, down = x + 48, x + w - 10, y + 32, y + h - 34
    for i in range(5):
        v = bottom + (top - bottom) * i / 4
        yy = down - (down - up) * i / 4
        out.append(f'<line x1="{left}" y1="{yy}" x2="{right}" y2="{yy}" class="grid"/>')
        out.append(f'<text x="{left - 4}" y="{yy + 4}" class="axis">{html.escape(number(v, unit))}</text>')
    span = max(t1 - t0, 1)
    for i, (name, pts, color) in enumerate(lines):
        path = " ".join(
            f"{left + (right - left) * (t - t0) / span:.1f},{down - (down - up) * (v - bottom) / (top - bottom):.1f}"
            for t, v in pts
        )
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(pts) <= 2:
            # A point or two (a step seen once) would draw no visible line.
            for xy in path.split():
                cx, cy = xy.split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        lx = x + 12 + (i % 4) * (w - 24) / 4
        ly = y + h - 18 + (i // 4) * 12
        out.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="3" fill="{color}"/>')
        out.append(f'<text x="{lx + 14}" y="{ly - 4}" class="legend">{html.escape(name)}</text>')


def render(dashboard, scrapes, cluster):
    col, row = 50, 32
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"]) * row + 60
    t0, t1 = scrapes[0][0], scrapes[-1][0]
    minutes = (t1 - t0) / 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{24 * col + 20}" height="{height}" font-family="sans-serif">',
        "<style>.title{font-size:13px;fill:#d8d9da;font-weight:bold}.stat{font-size:26px;fill:#fff;text-anchor:middle;font-weight:bold}"
        ".axis{font-size:10px;fill:#9fa7b3;text-anchor:end}.legend{font-size:10px;fill:#c7d0d9}.grid{stroke:#2c3235}"
        ".none{font-size:12px;fill:#6e7077;text-anchor:middle}.head{font-size:16px;fill:#d8d9da}</style>",
        f'<rect width="100%" height="100%" fill="#111217"/>',
        f'<text x="14" y="30" class="head">{html.escape(dashboard["title"])} · cluster {html.escape(cluster)} · last {minutes:.0f} min</text>',
    ]
    for p in dashboard["panels"]:
        g = p["gridPos"]
        x, y, w, h = 10 + g["x"] * col, 50 + g["y"] * row, g["w"] * col - 6, g["h"] * row - 6
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="2" fill="#181b1f" stroke="#2c3235"/>')
        out.append(f'<text x="{x + 8}" y="{y + 20}" class="title">{html.escape(p["title"])}</text>')
        lines = []
        for target in p["targets"]:
            for key, pts in sorted(evaluate(target["expr"], scrapes, cluster).items()):
                # Series that never left zero only crowd the legend.
                if any(v for _, v in pts):
                    lines.append((legend(target["legendFormat"], key), pts, COLORS[len(lines) % len(COLORS)]))
        if p["type"] == "stat":
            draw_stat(p, {k: pts for k, pts in evaluate(p["targets"][0]["expr"], scrapes, cluster).items()}, x, y, w, h, out)
        else:
            draw_series(p, lines, x, y, w, h, t0, t1, out)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) != 6 or argv[4] != "--cluster":
        sys.exit(__doc__)
    dashboard = json.loads(Path(argv[1]).read_text())
    scrapes = load_scrapes(argv[2])
    if len(scrapes) < 2:
        sys.exit(f"{argv[2]}: needs at least two scrapes (*.prom named by Unix second)")
    Path(argv[3]).write_text(render(dashboard, scrapes, argv[5]))


if __name__ == "__main__":
    main(sys.argv)
