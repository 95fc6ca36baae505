// charts.js: the UI's charts, drawn as SVG through the DOM: line charts
// and bar charts over time, and horizontal bar charts of named values.
// No library and nothing inline: colors and strokes come from style.css
// classes (s0..s3 for lines, b0..b3 for bars), labels are text nodes, and
// each point's figures are in a <title> a pointer shows.
//
// Every function draws into a container element, replacing what it held,
// at the container's current width (call it again after a resize), and
// returns the <svg>.
"use strict";

window.Charts = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const MARGIN = { top: 10, right: 12, bottom: 24, left: 52 };

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      e.setAttribute(k, String(v));
    }
    if (text !== undefined) {
      e.textContent = String(text);
    }
    return e;
  }

  function titled(node, text) {
    node.append(svgEl("title", {}, text));
    return node;
  }

  // scale returns a round maximum and step for an axis from 0 to max:
  // about four steps of 1, 2, 2.5 or 5 times a power of ten; for counts
  // (integer), never a step below 1.
  function scale(max, integer) {
    if (integer && !(max > 4)) {
      return { max: Math.max(1, Math.ceil(max || 0)), step: 1 };
    }
    if (!(max > 0)) {
      return { max: 1, step: 0.25 };
    }
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
    return { max: step * Math.ceil(max / step - 1e-9), step: step };
  }

  // frame starts a chart in container: the <svg> and the plot area.
  function frame(container, opts) {
    const width = Math.max(260, Math.floor(container.clientWidth || 560));
    const height = opts.height || (width < 420 ? 170 : 200);
    const svg = svgEl("svg", {
      viewBox: "0 0 " + width + " " + height,
      width: width,
      height: height,
      role: "img",
      "aria-label": opts.label || "chart",
    });
    container.replaceChildren(svg);
    return {
      svg: svg,
      x0: MARGIN.left,
      y0: MARGIN.top,
      w: width - MARGIN.left - MARGIN.right,
      h: height - MARGIN.top - MARGIN.bottom,
      width: width,
      height: height,
    };
  }

  // yAxis draws the value axis with its grid lines and returns the
  // function from a value to its y coordinate.
  function yAxis(f, max, format, integer) {
    const s = scale(max, integer);
    const y = function (v) {
      return f.y0 + f.h - (v / s.max) * f.h;
    };
    for (let v = 0; v <= s.max + s.step / 2; v += s.step) {
      const yy = Math.round(y(v)) + 0.5;
      f.svg.append(svgEl("line", { class: v === 0 ? "axis" : "grid", x1: f.x0, x2: f.x0 + f.w, y1: yy, y2: yy }));
      f.svg.append(svgEl("text", { x: f.x0 - 6, y: yy + 4, "text-anchor": "end" }, format(v)));
    }
    f.svg.append(svgEl("line", { class: "axis", x1: f.x0 + 0.5, x2: f.x0 + 0.5, y1: f.y0, y2: f.y0 + f.h }));
    return y;
  }

  // xLabels writes about one time label per 110 pixels under the plot.
  function xLabels(f, n, x, label) {
    if (n === 0) {
      return;
    }
    const count = Math.max(1, Math.min(n, Math.floor(f.w / 110)));
    const seen = new Set();
    for (let k = 0; k < count; k++) {
      const i = count === 1 ? n - 1 : Math.round((k * (n - 1)) / (count - 1));
      if (seen.has(i)) {
        continue;
      }
      seen.add(i);
      const anchor = count === 1 ? "end" : k === 0 ? "start" : k === count - 1 ? "end" : "middle";
      f.svg.append(svgEl("text", { x: x(i), y: f.y0 + f.h + 16, "text-anchor": anchor }, label(i)));
    }
  }

  function empty(f, text) {
    f.svg.append(svgEl("text", { class: "empty", x: f.x0 + f.w / 2, y: f.y0 + f.h / 2, "text-anchor": "middle" }, text));
  }

  function maxOf(series) {
    let m = 0;
    for (const s of series) {
      for (const v of s.values) {
        if (v !== null && v !== undefined && v > m) {
          m = v;
        }
      }
    }
    return m;
  }

  // line draws opts.series ([{name, values}], values null where unknown)
  // over opts.labels (one per point, for the x axis and the tooltips).
  // opts.max fixes the axis maximum (100 for a percentage); opts.integer
  // says the values are counts.
  function line(container, opts) {
    const f = frame(container, opts);
    const n = opts.labels.length;
    const y = yAxis(f, opts.max || maxOf(opts.series), opts.format, opts.integer);
    const step = n > 1 ? f.w / (n - 1) : 0;
    const x = function (i) {
      return n > 1 ? f.x0 + i * step : f.x0 + f.w / 2;
    };
    xLabels(f, n, x, function (i) {
      return opts.labels[i];
    });
    if (n === 0) {
      empty(f, opts.emptyText || "no data yet");
      return f.svg;
    }
    opts.series.forEach(function (s, k) {
      let d = "";
      let pen = false;
      let last = null;
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined || Number.isNaN(v)) {
          pen = false;
          return;
        }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
        last = i;
      });
      if (d !== "") {
        f.svg.append(svgEl("path", { class: "line s" + (k % 4), d: d }));
      }
      if (last !== null) {
        // The latest value, also what shows a series of a single point.
        f.svg.append(svgEl("circle", { class: "b" + (k % 4), cx: x(last), cy: y(s.values[last]), r: 3 }));
      }
    });
    // One column per point, its figures in a tooltip.
    const colW = n > 1 ? step : f.w;
    for (let i = 0; i < n; i++) {
      const text = opts.labels[i] + "\n" + opts.series.map(function (s) {
        const v = s.values[i];
        return s.name + ": " + (v === null || v === undefined ? "–" : opts.format(v));
      }).join("\n");
      f.svg.append(titled(svgEl("rect", { class: "hover", x: x(i) - colW / 2, y: f.y0, width: colW, height: f.h }), text));
    }
    return f.svg;
  }

  // bars draws one series ({name, values}) as a bar per point.
  function bars(container, opts) {
    const f = frame(container, opts);
    const n = opts.labels.length;
    const values = opts.series.values;
    const y = yAxis(f, maxOf([opts.series]), opts.format, opts.integer);
    const slot = n > 0 ? f.w / n : f.w;
    const x = function (i) {
      return f.x0 + (i + 0.5) * slot;
    };
    xLabels(f, n, x, function (i) {
      return opts.labels[i];
    });
    if (n === 0) {
      empty(f, opts.emptyText || "no data yet");
      return f.svg;
    }
    const bw = Math.max(1, slot * 0.8);
    for (let i = 0; i < n; i++) {
      const v = values[i] || 0;
      const top = y(v);
      const rect = svgEl("rect", {
        class: "b" + (opts.color || 0),
        x: (x(i) - bw / 2).toFixed(1),
        y: top.toFixed(1),
        width: bw.toFixed(1),
        height: Math.max(0, f.y0 + f.h - top).toFixed(1),
      });
      f.svg.append(titled(rect, opts.labels[i] + "\n" + opts.series.name + ": " + opts.format(v)));
    }
    return f.svg;
  }

  // hbars draws opts.items ([{label, value, href}]) as horizontal bars,
  // largest first as given, each label a link when it has an href.
  function hbars(container, opts) {
    const items = opts.items;
    const row = 24;
    const f = frame(container, { height: Math.max(1, items.length) * row + 8, label: opts.label });
    const labelW = Math.min(Math.round(f.width * 0.45), 260);
    const valueW = 64;
    const barX = labelW + 8;
    const barW = Math.max(20, f.width - barX - valueW);
    if (items.length === 0) {
      f.svg.append(svgEl("text", { class: "empty", x: 4, y: 18 }, opts.emptyText || "nothing yet"));
      return f.svg;
    }
    const max = Math.max.apply(null, items.map(function (it) { return it.value; })) || 1;
    const maxChars = Math.max(6, Math.floor(labelW / 6.6));
    items.forEach(function (it, i) {
      const top = 4 + i * row;
      let label = String(it.label);
      if (label.length > maxChars) {
        label = "…" + label.slice(label.length - maxChars + 1);
      }
      const text = titled(svgEl("text", { class: "label", x: labelW, y: top + 15, "text-anchor": "end" }, label), it.label);
      if (it.href) {
        const a = svgEl("a", { href: it.href });
        a.append(text);
        f.svg.append(a);
      } else {
        f.svg.append(text);
      }
      const w = Math.max(it.value > 0 ? 2 : 0, (it.value / max) * barW);
      f.svg.append(titled(svgEl("rect", { class: "b" + (opts.color || 0), x: barX, y: top + 4, width: w.toFixed(1), height: row - 8, rx: 2 }), it.label + ": " + opts.format(it.value)));
      f.svg.append(svgEl("text", { x: barX + w + 4, y: top + 15 }, opts.format(it.value)));
    });
    return f.svg;
  }

  return { line: line, bars: bars, hbars: hbars, scale: scale };
})();
