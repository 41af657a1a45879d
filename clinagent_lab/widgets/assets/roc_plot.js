// ROC plot drawn as SVG: curves (the selected one in colour with its bootstrap band), the chance line and
// the operating point. A click near the selected curve asks the kernel to move the threshold to that vertex
// ({type: "pick", curve, index}); everything else (sliders, numbers) lives in the kernel.

const NS = "http://www.w3.org/2000/svg";
const SIZE = 320;
const M = { left: 44, right: 12, top: 12, bottom: 40 };
const W = SIZE - M.left - M.right;
const H = SIZE - M.top - M.bottom;

export const sx = (x) => M.left + x * W;
export const sy = (y) => M.top + (1 - y) * H;

function node(tag, attrs, parent) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

export function linePath(xs, ys) {
  return xs.map((x, i) => `${i ? "L" : "M"}${sx(x).toFixed(2)},${sy(ys[i]).toFixed(2)}`).join("");
}

export function bandPath(band) {
  // step "post": each value holds from its grid point to the next one
  const { fpr, low, high } = band;
  const up = [];
  const down = [];
  for (let i = 0; i < fpr.length; i++) {
    const x1 = i + 1 < fpr.length ? fpr[i + 1] : fpr[i];
    up.push([fpr[i], high[i]], [x1, high[i]]);
    down.push([fpr[i], low[i]], [x1, low[i]]);
  }
  const pts = up.concat(down.reverse());
  return pts.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(2)},${sy(y).toFixed(2)}`).join("") + "Z";
}

export function nearest(curve, x, y) {
  let best = -1;
  let dist = Infinity;
  curve.fpr.forEach((f, i) => {
    const d = (f - x) ** 2 + (curve.tpr[i] - y) ** 2;
    if (d < dist && curve.thresholds[i] !== null) {
      dist = d;
      best = i;
    }
  });
  return best;
}

function axes(svg) {
  const g = node("g", { class: "axis" }, svg);
  for (let t = 0; t <= 1.0001; t += 0.2) {
    node("line", { class: "grid", x1: sx(t), x2: sx(t), y1: sy(0), y2: sy(1) }, g);
    node("line", { class: "grid", x1: sx(0), x2: sx(1), y1: sy(t), y2: sy(t) }, g);
    node("text", { x: sx(t), y: sy(0) + 14, "text-anchor": "middle" }, g).textContent = t.toFixed(1);
    node("text", { x: sx(0) - 6, y: sy(t) + 4, "text-anchor": "end" }, g).textContent = t.toFixed(1);
  }
  node("rect", { x: sx(0), y: sy(1), width: W, height: H, fill: "none", stroke: "#999" }, g);
  node("text", { x: sx(0.5), y: SIZE - 6, "text-anchor": "middle" }, g).textContent =
    "1 - specificity (FPR)";
  const yl = node("text", { x: 12, y: sy(0.5), "text-anchor": "middle", transform: `rotate(-90 12 ${sy(0.5)})` }, g);
  yl.textContent = "sensitivity (TPR)";
  node("line", { class: "chance", x1: sx(0), y1: sy(0), x2: sx(1), y2: sy(1) }, g);
}

export function draw(svg, model) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  axes(svg);
  const curves = model.get("curves") || [];
  const selected = model.get("selected") || 0;
  curves.forEach((c, i) => {
    if (i !== selected) node("path", { class: "curve other", d: linePath(c.fpr, c.tpr) }, svg);
  });
  const cur = curves[selected];
  if (!cur) return;
  if (cur.band) node("path", { class: "band", d: bandPath(cur.band) }, svg);
  node("path", { class: "curve", d: linePath(cur.fpr, cur.tpr) }, svg);
  const label = cur.auroc === null || cur.auroc === undefined ? "n/a" : cur.auroc.toFixed(3);
  node("text", { x: sx(0.97), y: sy(0.05), "text-anchor": "end" }, svg).textContent = `${cur.name}: AUROC ${label}`;
  const p = model.get("point") || {};
  if (p.fpr !== null && p.fpr !== undefined && p.tpr !== null && p.tpr !== undefined) {
    const dot = node("circle", { class: "point", cx: sx(p.fpr), cy: sy(p.tpr), r: 6 }, svg);
    node("title", {}, dot).textContent = p.label || "";
  }
}

export default {
  render({ model, el }) {
    el.classList.add("clinagent-roc-plot");
    const svg = node("svg", { width: SIZE, height: SIZE, viewBox: `0 0 ${SIZE} ${SIZE}`, role: "img" });
    el.appendChild(svg);
    const redraw = () => draw(svg, model);
    redraw();
    svg.addEventListener("click", (event) => {
      const box = svg.getBoundingClientRect();
      const x = ((event.clientX - box.left) * (SIZE / box.width) - M.left) / W;
      const y = 1 - ((event.clientY - box.top) * (SIZE / box.height) - M.top) / H;
      const selected = model.get("selected") || 0;
      const cur = (model.get("curves") || [])[selected];
      if (!cur || x < -0.05 || x > 1.05 || y < -0.05 || y > 1.05) return;
      const index = nearest(cur, x, y);
      if (index >= 0) model.send({ type: "pick", curve: selected, index });
    });
    for (const name of ["change:curves", "change:selected", "change:point"]) model.on(name, redraw);
    return () => {
      for (const name of ["change:curves", "change:selected", "change:point"]) model.off(name, redraw);
    };
  },
};
