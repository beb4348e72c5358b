// Inline SVG charts for the queues page: an area for depth, stacked bars for throughput. No library:
// a viewBox of 100 x 30 scaled to the card's width.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function frame(label) {
  const root = svg("svg", { class: "chart", viewBox: "0 0 100 30", preserveAspectRatio: "none", role: "img" });
  root.append(svg("title", {}));
  root.firstChild.textContent = label;
  return root;
}

export function areaChart(values, label) {
  const root = frame(label);
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? 100 / (values.length - 1) : 100;
  const points = values.map((v, i) => `${(i * step).toFixed(2)},${(30 - (v / max) * 28).toFixed(2)}`);
  root.append(svg("polygon", { class: "depth", points: `0,30 ${points.join(" ")} 100,30` }));
  return root;
}

export function stackedBars(ok, bad, label) {
  const root = frame(label);
  const max = Math.max(1, ...ok.map((v, i) => v + bad[i]));
  const width = 100 / ok.length;
  ok.forEach((v, i) => {
    const okH = (v / max) * 28;
    const badH = (bad[i] / max) * 28;
    const x = (i * width + width * 0.1).toFixed(2);
    const w = (width * 0.8).toFixed(2);
    if (okH) root.append(svg("rect", { class: "ok", x, y: (30 - okH).toFixed(2), width: w, height: okH.toFixed(2) }));
    if (badH) root.append(svg("rect", { class: "bad", x, y: (30 - okH - badH).toFixed(2), width: w, height: badH.toFixed(2) }));
  });
  return root;
}
