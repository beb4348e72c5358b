// Queues: per job type, waiting and running now, depth and throughput over the chosen window,
// success rate and p95 completion time (/api/queues: grouped counts, see domain/stats.py). Redrawn
// when the live feed says jobs changed, at most every REDRAW_MS.

import { get } from "./api.js";
import { areaChart, stackedBars } from "./charts.js";
import { h, liveState, showError } from "./ui.js";

const RANGES = {
  "1h": [60, 60],
  "6h": [300, 72],
  "24h": [900, 96],
  "7d": [7200, 84],
};
const REDRAW_MS = 10000;

function seconds(value) {
  if (value === null || value === undefined) return "—";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value} s`;
  if (value < 7200) return `${Math.round(value / 60)} min`;
  return `${Math.round(value / 3600)} h`;
}

function card(q, range) {
  const ended = q.completed.reduce((a, b) => a + b, 0) + q.failed.reduce((a, b) => a + b, 0);
  const p95 = q.p95_over ? `> ${seconds(q.p95_over)}` : seconds(q.p95_seconds);
  return h(
    "section",
    { class: "card queue", "data-job-type": q.job_type },
    h("h2", {}, q.job_type),
    h(
      "div",
      { class: "numbers" },
      h("div", {}, h("b", {}, q.waiting.toLocaleString()), h("span", {}, "waiting")),
      h("div", {}, h("b", {}, q.running.toLocaleString()), h("span", {}, "running")),
      h("div", {}, h("b", {}, ended.toLocaleString()), h("span", {}, `ended (${range})`)),
      h("div", {}, h("b", {}, q.success_rate === null ? "—" : `${(q.success_rate * 100).toFixed(1)}%`), h("span", {}, "success")),
      h("div", {}, h("b", {}, p95), h("span", {}, "p95 completion")),
    ),
    h("div", { class: "chart-title" }, `Depth (waiting), peak ${Math.max(0, ...q.depth).toLocaleString()}`),
    areaChart(q.depth, `depth of ${q.job_type}`),
    h(
      "div",
      { class: "chart-title" },
      `Ended per bucket: completed (green), failed or cancelled (red), peak ${Math.max(0, ...q.completed.map((c, i) => c + q.failed[i])).toLocaleString()}`,
    ),
    stackedBars(q.completed, q.failed, `throughput of ${q.job_type}`),
  );
}

export function queuesView(root) {
  let range = "1h";
  const grid = h("div", { class: "queues", id: "queues" });
  const note = h("p", { class: "muted" });
  const select = h(
    "select",
    { "aria-label": "time range" },
    Object.keys(RANGES).map((r) => h("option", { value: r }, `last ${r}`)),
  );
  root.replaceChildren(h("h1", {}, "Queues"), h("div", { class: "bar-actions" }, select, note), grid);

  let last = 0;
  let timer = null;
  async function draw() {
    last = Date.now();
    const [bucket, buckets] = RANGES[range];
    try {
      const data = await get(`/api/queues?bucket_seconds=${bucket}&buckets=${buckets}`);
      grid.replaceChildren(...data.queues.map((q) => card(q, range)));
      if (!data.queues.length) grid.append(h("p", { class: "muted" }, "No jobs in this window."));
      note.textContent = `${new Date(data.start).toLocaleString()} – ${new Date(data.end).toLocaleString()}, ${seconds(bucket)} buckets`;
    } catch (err) {
      showError(grid, err);
    }
  }
  select.addEventListener("change", () => {
    range = select.value;
    draw();
  });

  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => liveState(true));
  source.addEventListener("error", () => liveState(false));
  const soon = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      draw();
    }, Math.max(0, REDRAW_MS - (Date.now() - last)));
  };
  source.addEventListener("jobs", soon);
  source.addEventListener("resync", soon);
  draw();
  return () => {
    source.close();
    clearTimeout(timer);
    liveState(false);
  };
}
