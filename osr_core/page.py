"""index.html: a stage's scored images in one self-contained page, opened straight from the file system.

The page holds its rows as JSON and draws only the rows in view (a virtual list), so thousands of rows sort and
filter at once; every row's picture (the image as the model saw it, its reconstruction and the error map) is a tile
of one sprite PNG beside the page (plots.sprite_png), one request for the whole page. No script, style or font comes
from anywhere else. The columns carry the names and signs of scores.csv. The same rows give the same bytes.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import plots
from .evaluation import SHOWN_PER_SIDE, reason_shares
from .pipeline import Decisions

PAGE = "index.html"
SPRITE = "sprite.png"
SPRITE_COLUMNS = 50


@dataclass
class Column:
    key: str
    label: str
    kind: str  # "text" or "number"
    help: str = ""


def decision_columns(decisions: Decisions, rows: Sequence[int] | None = None) -> tuple[list[Column], list[list]]:
    """The columns scores.csv has after its id (answer, reason, pred, score, threshold, margin, every component) and
    their values for the given images (all by default)."""
    comps = decisions.scored.components
    columns = [Column("answer", "answer", "text", "0-9, or unknown"),
               Column("reason", "reason", "text", "why unknown: blank (nothing written), or the evidence of the part that "
                                                  "decided (far from every class, unlike any digit, between digits)"),
               Column("pred", "nearest", "text", "the nearest known digit (pred), kept for unknowns too"),
               Column("score", "score", "number", "the decision score; higher = more unknown"),
               Column("threshold", "threshold", "number", "the threshold of the nearest digit's class"),
               Column("margin", "margin", "number", "score - threshold; above 0 = unknown; inf for a blank image")]
    columns += [Column(c, c, "number", "a score component; higher = more unknown") for c in comps]
    answers, reasons, margin = decisions.answers, decisions.reasons, decisions.margin
    values = [[answers[i], reasons[i], str(int(decisions.scored.pred[i])), float(decisions.score[i]),
               float(decisions.threshold[i]), float(margin[i]), *(float(comps[c][i]) for c in comps)]
              for i in (range(len(answers)) if rows is None else rows)]
    return columns, values


def _cell(value):
    """JSON for one value: numbers to 8 significant digits (as scores.csv), infinity as the string "inf"."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(f"{value:.8g}")
    return value


def render(title: str, intro: str, id_column: Column, ids: Sequence, columns: list[Column], values: list[list],
           filters: Sequence[str], summary_html: str = "") -> str:
    """The page: `ids` and `values` (one list per row, in `columns` order) of images whose triplet i is tile i of
    the sprite. `filters`: keys of the columns offered as drop-down filters (answer, nearest digit, set, ...)."""
    columns = [id_column, *columns]
    data = {"columns": [c.__dict__ for c in columns], "filters": list(filters), "sprite": SPRITE,
            "spriteColumns": SPRITE_COLUMNS, "sort": "margin",
            "rows": [[_cell(i), *(_cell(v) for v in row)] for i, row in zip(ids, values)]}
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return TEMPLATE.format(title=html.escape(title), intro=intro, summary=summary_html, data=payload,
                           style=STYLE, script=SCRIPT)


def sprite(images, recons) -> bytes:
    return plots.sprite_png(images, recons, SPRITE_COLUMNS)


def write(outputs, title: str, intro: str, id_column: Column, ids: Sequence, columns: list[Column], values: list[list],
          images, recons, filters: Sequence[str] = ("answer", "reason", "pred"),
          summary_html: str = "") -> None:
    """Stages index.html and sprite.png through a stage's outputs (io.StageOutputs). Row i: ids[i], values[i] (in
    `columns` order), and images[i] as the model saw it with its reconstruction recons[i], both (28, 28) (images and
    recons: arrays, or lists of arrays one after the other, as plots.sprite_png takes them)."""
    outputs.write_bytes(SPRITE, sprite(images, recons))
    outputs.write_text(PAGE, render(title, intro, id_column, ids, columns, values, filters, summary_html))


def write_scored(outputs, what: str, source: str, score: str, id_column: Column, ids: Sequence, decisions: Decisions,
                 images: np.ndarray, extra: Sequence[tuple[Column, Sequence]] = (),
                 filters: Sequence[str] = ("answer", "reason", "pred")) -> None:
    """The page of a scored folder or set (test.py, test_letters.py): every image, with `extra` columns (a label)
    before the decision's. decisions must have kept their reconstructions."""
    columns, values = decision_columns(decisions)
    columns = [c for c, _ in extra] + columns
    values = [[*(v[i] for _, v in extra), *row] for i, row in enumerate(values)]
    intro = (f"{len(ids)} {html.escape(what)} from {html.escape(source)}, decided by the score <code>"
             f"{html.escape(score)}</code>. Each row: the image as the model saw it, its reconstruction and the error "
             "map (bright = badly rebuilt); the columns are those of scores.csv (higher = more unknown). Click a "
             "column to sort; the most anomalous come first.")
    write(outputs, f"{what[0].upper()}{what[1:]}, as the model answered them", intro, id_column, ids, columns, values,
          images, decisions.scored.recon, filters)


def write_evaluation(outputs, result, score: str) -> None:
    """The evaluation's page: for the known digits, every unknown set and every covariate shift, the images it
    rejected most confidently and those it accepted most confidently (evaluation.Shown), with a summary per set."""
    parts = [result.known, *(s for s in result.sets.values() if s.shown is not None),
             *(s for s in result.covariate.values() if s.shown is not None)]
    ids, values, images, recons, summary = [], [], [], [], []
    columns = None
    for s in parts:
        rows = s.shown.index.tolist()
        columns, rows_values = decision_columns(s.decisions, rows)
        labels = [str(int(s.labels[i])) if s.labels is not None else "" for i in rows]
        ids += [s.image_name(i) for i in rows]
        values += [[s.name, s.kind, label, *v] for label, v in zip(labels, rows_values)]
        images.append(s.shown.images)
        recons.append(s.shown.recon)
        rejected = s.decisions.is_unknown
        by_reason = "; ".join(f"{html.escape(r)} {100 * v:.2f}%" for r, v in reason_shares(s.decisions).items())
        summary.append(f"<tr><td><a data-filter-set=\"{html.escape(s.name)}\">{html.escape(s.name)}</a></td>"
                       f"<td>{html.escape(s.kind)}</td><td>{len(rejected)}</td><td>{100 * (1 - rejected.mean()):.2f}%</td>"
                       f"<td>{100 * rejected.mean():.2f}%</td><td>{by_reason}</td><td>{s.shown.rejected}</td>"
                       f"<td>{len(rows) - s.shown.rejected}</td></tr>")
    columns = [Column("set", "set", "text"), Column("kind", "kind", "text", "known digits, an unknown set, or known "
                                                    "digits under covariate shift"),
               Column("label", "label", "text", "the true digit, where there is one"), *columns]
    table = ("<div class=\"summary\"><table><tr><th>set</th><th>kind</th><th>images</th><th>named a digit</th>"
             "<th>rejected</th><th>rejected by</th><th>rejected, on this page</th><th>named a digit, on this page</th></tr>"
             + "".join(summary) + "</table></div>")
    intro = (f"Every set of the evaluation, decided by the score <code>{html.escape(score)}</code>: for each, the "
             f"{SHOWN_PER_SIDE} images it rejected most confidently (highest margin) and the {SHOWN_PER_SIDE} it "
             "accepted most confidently (lowest margin); for an unknown set the latter are what slipped through as "
             "digits. Click a set to see only it; click a column to sort.")
    write(outputs, "Open-set evaluation: what was rejected and what slipped through", intro, Column("id", "image", "text"),
          ids, columns, values, images, recons, ("set", "answer", "reason", "pred"),
          table)


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { padding: 12px 16px; border-bottom: 1px solid #ddd; }
h1 { font-size: 18px; margin: 0 0 4px; }
.intro { margin: 0; color: #555; max-width: 70em; }
.controls { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; padding: 8px 16px; background: #f6f6f6;
            border-bottom: 1px solid #ddd; }
.controls label { display: flex; gap: 6px; align-items: center; }
#filters { display: flex; gap: 14px; flex-wrap: wrap; }
#count { font-weight: 600; margin-left: auto; }
.summary { padding: 4px 16px 8px; }
.summary table { border-collapse: collapse; }
.summary td, .summary th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right; }
.summary td:first-child, .summary th:first-child { text-align: left; }
.summary a { cursor: pointer; color: #0645ad; }
.grid { display: grid; grid-template-columns: var(--cols); width: var(--width); align-items: center; column-gap: 10px;
        padding: 0 16px; }
#head { position: sticky; top: 0; background: #fff; border-bottom: 2px solid #ccc; height: 44px; z-index: 1;
        font-size: 12px; }
#head div { cursor: pointer; font-weight: 600; overflow-wrap: anywhere; user-select: none; }
#head div.sorted::after { content: attr(data-dir); }
#scroller { overflow: auto; height: calc(100vh - var(--top)); position: relative; }
#spacer { position: relative; width: var(--width); }
.row { position: absolute; left: 0; height: 60px; border-bottom: 1px solid #f0f0f0; }
.row:nth-child(even) { background: #fafafa; }
.row div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.thumb { width: 168px; height: 56px; image-rendering: pixelated; background-repeat: no-repeat; }
.unknown { color: #b00020; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('data').textContent);
  const cols = data.columns, key = cols.map(c => c.key);
  const num = v => v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v;
  const rows = data.rows.map((r, i) => ({ i: i, v: r.map(num) }));
  const ROW = 60, TILE_W = 84, TILE_H = 28, SCALE = 2;
  let shown = rows.slice(), sortKey = data.sort, sortDir = -1;
  const head = document.getElementById('head'), spacer = document.getElementById('spacer');
  const scroller = document.getElementById('scroller'), count = document.getElementById('count');
  // A text column is as wide as its longest value (a reason such as 'unlike any digit' is read whole), up to a limit.
  const longest = j => rows.reduce((m, r) => Math.max(m, String(r.v[j]).length), cols[j].label.length);
  const widths = [168, ...cols.map((c, j) => j === 0 ? 150 : c.kind === 'number' ? 90
                                             : Math.min(360, Math.max(80, 8 * longest(j) + 12)))];
  document.documentElement.style.setProperty('--cols', widths.map(w => w + 'px').join(' '));
  document.documentElement.style.setProperty('--width', (widths.reduce((a, b) => a + b + 10, 0) + 22) + 'px');

  function fmt(v, c) {
    if (c.kind !== 'number') return String(v);
    if (v === Infinity) return 'inf';
    if (v === -Infinity) return '-inf';
    return Number(v).toPrecision(4).replace(/\.?0+(e|$)/, '$1');
  }
  head.appendChild(document.createElement('div')).textContent = 'image | recon | error';
  cols.forEach((c, j) => {
    const d = head.appendChild(document.createElement('div'));
    d.textContent = c.label; d.title = c.help || ''; d.dataset.key = c.key;
    if (c.kind === 'number') d.className = 'num';
    d.addEventListener('click', () => {
      sortDir = sortKey === c.key ? -sortDir : (c.kind === 'number' ? -1 : 1); sortKey = c.key; apply();
    });
  });

  const selects = {};
  data.filters.forEach(k => {
    const j = key.indexOf(k), label = document.createElement('label');
    label.textContent = cols[j].label + ' ';
    const sel = label.appendChild(document.createElement('select'));
    sel.dataset.key = k;
    const values = Array.from(new Set(rows.map(r => String(r.v[j])))).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    const options = k === 'answer' ? ['all', 'any digit', ...values] : ['all', ...values];
    options.forEach(v => { const o = sel.appendChild(document.createElement('option')); o.value = v; o.textContent = v === '' ? '(none)' : v; });
    sel.addEventListener('change', apply);
    selects[k] = sel;
    document.getElementById('filters').appendChild(label);
  });
  document.querySelectorAll('[data-filter-set]').forEach(a => a.addEventListener('click', () => {
    selects.set.value = a.dataset.filterSet; apply();
  }));

  function apply() {
    const started = performance.now();
    const active = Object.entries(selects).filter(([, s]) => s.value !== 'all').map(([k, s]) => [key.indexOf(k), s.value]);
    shown = rows.filter(r => active.every(([j, v]) => v === 'any digit' ? r.v[j] !== 'unknown' : String(r.v[j]) === v));
    const j = key.indexOf(sortKey), numeric = cols[j].kind === 'number';
    shown.sort((a, b) => {
      const x = a.v[j], y = b.v[j];
      const d = numeric ? (x < y ? -1 : x > y ? 1 : 0) : String(x).localeCompare(String(y), undefined, { numeric: true });
      return d * sortDir || a.i - b.i;
    });
    head.querySelectorAll('div').forEach(d => {
      d.classList.toggle('sorted', d.dataset.key === sortKey); d.dataset.dir = sortDir < 0 ? ' \u25bc' : ' \u25b2';
    });
    count.textContent = shown.length + ' of ' + rows.length + ' images';
    spacer.style.height = (shown.length * ROW) + 'px';
    scroller.scrollTop = 0;
    draw(true);
    document.body.dataset.lastMs = (performance.now() - started).toFixed(1);
  }

  let drawn = '';
  function draw(force) {
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - 5);
    const last = Math.min(shown.length, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW) + 5);
    if (!force && drawn === first + ':' + last) return;
    drawn = first + ':' + last;
    const frag = document.createDocumentFragment();
    for (let n = first; n < last; n++) {
      const r = shown[n], el = document.createElement('div');
      el.className = 'row grid'; el.style.top = (n * ROW) + 'px'; el.dataset.index = r.i;
      const t = el.appendChild(document.createElement('div')); t.className = 'thumb';
      const x = (r.i % data.spriteColumns) * TILE_W * SCALE, y = Math.floor(r.i / data.spriteColumns) * TILE_H * SCALE;
      t.style.backgroundImage = 'url(' + data.sprite + ')';
      t.style.backgroundSize = (data.spriteColumns * TILE_W * SCALE) + 'px auto';
      t.style.backgroundPosition = (-x) + 'px ' + (-y) + 'px';
      cols.forEach((c, j) => {
        const d = el.appendChild(document.createElement('div'));
        d.textContent = fmt(r.v[j], c); d.dataset.key = c.key;
        if (c.kind === 'number') d.className = 'num';
        if (c.key === 'answer' && r.v[j] === 'unknown') d.className = 'unknown';
      });
      frag.appendChild(el);
    }
    spacer.replaceChildren(frag);
  }
  let pending = false;
  scroller.addEventListener('scroll', () => {
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(false); }); }
  });
  window.addEventListener('resize', () => draw(true));
  const top = document.getElementById('scroller').getBoundingClientRect().top;
  document.documentElement.style.setProperty('--top', top + 'px');
  apply();
  performance.mark('rows-drawn');
  document.body.dataset.ready = '1';
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body>
<header><h1>{title}</h1><p class="intro">{intro}</p></header>
{summary}
<div class="controls"><span id="filters"></span><span id="count"></span></div>
<div id="scroller"><div id="head" class="grid"></div><div id="spacer"></div></div>
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body></html>
"""
