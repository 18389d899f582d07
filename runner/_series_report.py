"""The trajectory report: one plot per tier across checkpoints, and the table behind it.

Per tier: the qualification score (plain, and elicited where the campaign has a variant), the
safety score and what the thorough evals measured, each with its 95% interval as a band; the
tier's qualification bar; a marker at each capability jump and each checkpoint caught
sandbagging; and, on a strip below, the tier each checkpoint reached. Rendered with matplotlib
(Agg, no display), embedded in a self-contained HTML page (SVG inline as base64, no script, no
network) and exported as PNG/SVG on request. Every string from a file or a log is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from ._campaign import Campaign
from ._series_file import Series
from ._series_view import Band, CheckpointView, fmt_band

COLORS = {
    "qualification": "#1f77b4",
    "elicited": "#9467bd",
    "safety": "#2ca02c",
    "thorough": "#ff7f0e",
}


def _x(rows: list[CheckpointView]) -> list[float]:
    steps = [r.step for r in rows]
    if all(s is not None for s in steps) and len(set(steps)) == len(steps):
        return [float(s) for s in steps]  # type: ignore[arg-type]
    return [float(i) for i in range(len(rows))]


def _bar(campaign: Campaign, tier: str) -> float | None:
    for spec in campaign.tier(tier).tasks_of("qualification"):
        for th in spec.thresholds:
            return th.value
    return None


def figure(series: Series, campaign: Campaign, rows: list[CheckpointView]) -> Any:
    """The matplotlib figure (Agg canvas)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    tiers = [t.tier for t in campaign.tiers]
    fig = Figure(figsize=(10, 3.2 * len(tiers) + 1.6), layout="constrained")
    ratios = [3] * len(tiers) + [1]
    axes = fig.subplots(len(tiers) + 1, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    xs = _x(rows)
    labels = [r.label for r in rows]
    for ax, tier in zip(axes, tiers, strict=False):
        for key in ("qualification", "elicited", "safety", "thorough"):
            bands: list[Band | None] = [getattr(r.tiers[tier], key) for r in rows]
            if all(b is None for b in bands):
                continue
            mean = [b[0] if b else math.nan for b in bands]
            low = [b[1] if b else math.nan for b in bands]
            high = [b[2] if b else math.nan for b in bands]
            style = "--" if key == "elicited" else "-"
            err = [[m - lo for m, lo in zip(mean, low, strict=True)],
                   [hi - m for m, hi in zip(mean, high, strict=True)]]  # fmt: skip
            ax.errorbar(xs, mean, yerr=err, fmt=style, marker="o", color=COLORS[key],
                        label=key, capsize=3, linewidth=1.5)  # fmt: skip
            ax.fill_between(xs, low, high, color=COLORS[key], alpha=0.15, linewidth=0)
        bar = _bar(campaign, tier)
        if bar is not None:
            ax.axhline(bar, color="grey", linestyle=":", linewidth=1, label="qualification bar")
        for x, r in zip(xs, rows, strict=True):
            if any(t == tier for t, _ in r.jumps):
                ax.axvline(x, color="red", linewidth=1.5, alpha=0.7)
                ax.annotate("JUMP", (x, 1.04), color="red", ha="center", fontsize=8,
                            fontweight="bold", annotation_clip=False)  # fmt: skip
            if r.treated_as_qualified and r.tiers[tier].qualification is not None:
                q = r.tiers[tier].qualification
                assert q is not None
                ax.plot([x], [q[0]], marker="X", markersize=12, color="black", linestyle="none")
                ax.annotate("sandbagging?", (x, q[0]), xytext=(6, -12),
                            textcoords="offset points", fontsize=8)  # fmt: skip
        ax.set_ylim(-0.05, 1.1)
        ax.set_ylabel("score (mean, 95% CI)")
        ax.set_title(f"{tier}", loc="left", fontsize=10, fontweight="bold")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7, ncols=3)
    strip = axes[-1]
    levels = ["none", *tiers]
    done = [(x, r) for x, r in zip(xs, rows, strict=True) if r.status not in ("pending",)]
    reached = [levels.index(r.reached) if r.reached in levels else 0 for _, r in done]
    colors = ["black" if r.treated_as_qualified else "#444" for _, r in done]
    strip.scatter([x for x, _ in done], reached, c=colors, s=40, zorder=3)
    strip.step([x for x, _ in done], reached, where="mid", color="#888", linewidth=1)
    for x, r in done:
        if r.thorough_ran:
            strip.annotate("T", (x, levels.index(r.thorough_ran[-1])), xytext=(5, 4),
                           textcoords="offset points", fontsize=8, color=COLORS["thorough"])  # fmt: skip
    strip.set_yticks(range(len(levels)), levels, fontsize=8)
    strip.set_ylim(-0.5, len(levels) - 0.5)
    strip.set_title("tier reached (T: thorough evals ran)", loc="left", fontsize=9)
    strip.set_xticks(xs, labels, rotation=30, ha="right", fontsize=8)
    strip.set_xlabel("checkpoint")
    fig.suptitle(f"series {series.name}: campaign {campaign.name}", fontsize=12)
    return fig


def _image(fig: Any, fmt: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110)
    return buf.getvalue()


def _table(campaign: Campaign, rows: list[CheckpointView]) -> str:
    e = html.escape
    tiers = [t.tier for t in campaign.tiers]
    head = ["checkpoint", "step", "model args", "status", "reached"]
    for t in tiers:
        head += [f"{t} qualification", f"{t} elicited", f"{t} safety", f"{t} thorough"]
    head.append("flags")
    out = ["<table><thead><tr>", *(f"<th>{e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for r in rows:
        flags = [f"capability jump at {t}: {'; '.join(reasons)}" for t, reasons in r.jumps]
        flags += [f"sandbagging suspected (treated as qualified): {s}" for s in r.sandbagging]
        if r.approval:
            flags.append(f"approved by {r.approval}")
        cls = " class='jump'" if r.jumps else (" class='sandbag'" if r.sandbagging else "")
        cells = [r.label, "" if r.step is None else str(r.step),
                 ", ".join(f"{k}={v}" for k, v in r.args.items()), r.status, r.reached or "-"]  # fmt: skip
        for t in tiers:
            v = r.tiers[t]
            cells += [fmt_band(v.qualification), fmt_band(v.elicited), fmt_band(v.safety),
                      fmt_band(v.thorough)]  # fmt: skip
        out.append(f"<tr{cls}>" + "".join(f"<td>{e(c)}</td>" for c in cells))
        out.append("<td>" + "<br>".join(e(f) for f in flags) + "</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}tr.jump td{background:#fde8e8}tr.sandbag td{background:#f1e8fd}
img{max-width:100%}.note{color:#555;font-size:13px}
"""


def render_report(
    series: Series,
    campaign: Campaign,
    rows: list[CheckpointView],
    *,
    out: Path,
    png: Path | None = None,
    svg: Path | None = None,
) -> None:
    """Write the HTML report (and the PNG/SVG plots when asked)."""
    fig = figure(series, campaign, rows)
    svg_bytes = _image(fig, "svg")
    if png is not None:
        png.write_bytes(_image(fig, "png"))
    if svg is not None:
        svg.write_bytes(svg_bytes)
    e = html.escape
    jumps = sum(1 for r in rows if r.jumps)
    sandbag = sum(1 for r in rows if r.sandbagging)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>tierlock series {e(series.name)}</title><style>{_STYLE}</style></head><body>
<h1>Series {e(series.name)}</h1>
<p class="note">Campaign {e(campaign.name)}; {len(rows)} checkpoints; {jumps} with a capability
jump (paired test, alpha {series.jump.alpha:g}, min delta {series.jump.min_delta:g}, action
{e(series.jump.action)}); {sandbag} treated as qualified for suspected sandbagging. Bands are 95%
intervals of the per-sample mean (Wilson for 0/1 scores).</p>
<img id="trajectory" alt="trajectory plot" src="data:image/svg+xml;base64,{base64.b64encode(svg_bytes).decode()}">
<h2>Checkpoints</h2>{_table(campaign, rows)}
</body></html>"""
    out.write_text(page, encoding="utf-8")
