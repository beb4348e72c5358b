// The job list: filters (kept in the address, so a filtered view can be shared), keyset pages,
// live rows from /api/stream, and a bulk cancel that shows the filter's count before it acts.

import { filterQuery, get, post } from "./api.js";
import { STATUSES, badge, confirmAction, h, liveState, progressBar, setProgress, shortId, showError, when } from "./ui.js";

const PAGE_SIZE = 50;

function readFilter(params) {
  const list = (key) => (params.get(key) || "").split(",").map((s) => s.trim()).filter(Boolean);
  return {
    status: list("status"),
    type: params.get("type") || "",
    labels: list("label"),
    created_after: params.get("created_after") || "",
    created_before: params.get("created_before") || "",
    q: params.get("q") || "",
  };
}

function filterHash(filter) {
  const p = new URLSearchParams();
  if (filter.status.length) p.set("status", filter.status.join(","));
  if (filter.type) p.set("type", filter.type);
  if (filter.labels.length) p.set("label", filter.labels.join(","));
  if (filter.created_after) p.set("created_after", filter.created_after);
  if (filter.created_before) p.set("created_before", filter.created_before);
  if (filter.q) p.set("q", filter.q);
  const text = p.toString();
  return text ? `#/?${text}` : "#/";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// Whether a job pushed by the live feed belongs in the list as filtered (the server's rules).
function matches(job, filter) {
  if (filter.status.length && !filter.status.includes(job.status)) return false;
  const types = filter.type ? filter.type.split(",").map((s) => s.trim()) : [];
  if (filter.q && !UUID.test(filter.q)) types.push(filter.q);
  if (filter.q && UUID.test(filter.q) && job.id !== filter.q.toLowerCase()) return false;
  if (types.length && !types.includes(job.job_type)) return false;
  for (const pair of filter.labels) {
    const [k, ...v] = pair.split("=");
    if (job.labels[k] !== v.join("=")) return false;
  }
  if (filter.created_after && job.create_time < new Date(filter.created_after).toISOString()) return false;
  if (filter.created_before && job.create_time >= new Date(filter.created_before).toISOString()) return false;
  return true;
}

function localInput(iso) {
  // datetime-local shows local time; the filter keeps UTC ISO times.
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function filterForm(filter) {
  const checks = STATUSES.map((s) =>
    h("label", {}, h("input", { type: "checkbox", name: "status", value: s, checked: filter.status.includes(s) }), s),
  );
  const form = h(
    "form",
    {
      class: "filters",
      id: "filters",
      onsubmit: (e) => {
        e.preventDefault();
        const form = new FormData(e.target);
        const toIso = (v) => (v ? new Date(v).toISOString() : "");
        location.hash = filterHash({
          status: form.getAll("status"),
          type: String(form.get("type") || "").trim(),
          labels: String(form.get("labels") || "").split(",").map((s) => s.trim()).filter(Boolean),
          created_after: toIso(form.get("created_after")),
          created_before: toIso(form.get("created_before")),
          q: String(form.get("q") || "").trim(),
        });
      },
    },
    h("fieldset", {}, h("legend", { class: "muted" }, "Status"), checks),
    h("label", {}, "Job type", h("input", { name: "type", value: filter.type, placeholder: "image.resize" })),
    h("label", {}, "Labels", h("input", { name: "labels", value: filter.labels.join(","), placeholder: "team=ml,env=prod" })),
    h("label", {}, "Created after", h("input", { type: "datetime-local", name: "created_after", value: localInput(filter.created_after) })),
    h("label", {}, "Created before", h("input", { type: "datetime-local", name: "created_before", value: localInput(filter.created_before) })),
    h("label", {}, "Search", h("input", { name: "q", type: "search", value: filter.q, placeholder: "job id or type" })),
    h("div", {}, h("button", { type: "submit" }, "Apply"), " ", h("a", { href: "#/" }, "Clear")),
  );
  // On a phone the filters start folded, so the jobs are what the screen shows first.
  const open = !window.matchMedia("(max-width: 640px)").matches;
  return h("details", { class: "filters card", open }, h("summary", {}, "Filters"), form);
}

function row(job) {
  return h(
    "tr",
    { "data-job-id": job.id, "data-created": job.create_time },
    h("td", { "data-label": "Job" }, h("a", { href: `#/jobs/${job.id}`, class: "mono" }, shortId(job.id))),
    h("td", { "data-label": "Type" }, job.job_type),
    h("td", { "data-label": "Status" }, badge(job.status)),
    h("td", { "data-label": "Progress" }, progressBar(job)),
    h("td", { "data-label": "Created" }, when(job.create_time)),
    h("td", { "data-label": "Updated" }, when(job.update_time)),
  );
}

function refreshRow(tr, job) {
  tr.replaceWith(row(job));
}

export function jobsView(root, params) {
  const filter = readFilter(params);
  const pageStack = [""]; // page tokens of the pages before this one (keyset paging)
  let pageToken = "";
  let nextToken = "";
  const tbody = h("tbody", { id: "job-rows" });
  const countText = h("span", { id: "match-count", class: "muted" });
  const bulk = h("button", { class: "danger", id: "bulk-cancel", type: "button" }, "Cancel matching…");
  const newer = h("button", { class: "secondary", type: "button", disabled: true }, "← Newer");
  const older = h("button", { class: "secondary", type: "button", disabled: true }, "Older →");
  const message = h("div");
  root.replaceChildren(
    h("h1", {}, "Jobs"),
    filterForm(filter),
    h("div", { class: "bar-actions" }, countText, bulk),
    message,
    h(
      "table",
      { class: "jobs" },
      h("thead", {}, h("tr", {}, ["Job", "Type", "Status", "Progress", "Created", "Updated"].map((t) => h("th", {}, t)))),
      tbody,
    ),
    h("div", { class: "pager" }, newer, older),
  );

  async function count() {
    const found = await get(`/api/jobs/count?${filterQuery(filter)}`);
    const n = found.count.toLocaleString() + (found.at_least ? "+" : "");
    countText.textContent = `${n} matching job${found.count === 1 ? "" : "s"}`;
    return found;
  }

  async function load(token) {
    const q = filterQuery(filter);
    q.set("page_size", String(PAGE_SIZE));
    if (token) q.set("page_token", token);
    try {
      const page = await get(`/api/jobs?${q}`);
      pageToken = token;
      nextToken = page.next_page_token;
      tbody.replaceChildren(...page.jobs.map(row));
      if (!page.jobs.length) tbody.append(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No jobs match.")));
      newer.disabled = pageStack.length <= 1 && !token;
      older.disabled = !nextToken;
      message.replaceChildren();
    } catch (err) {
      showError(message, err);
    }
  }

  older.addEventListener("click", () => {
    pageStack.push(pageToken);
    load(nextToken);
  });
  newer.addEventListener("click", () => {
    load(pageStack.length > 1 ? pageStack.pop() : "");
  });
  bulk.addEventListener("click", async () => {
    const found = await count().catch((err) => showError(message, err));
    if (!found) return;
    const n = found.count.toLocaleString() + (found.at_least ? " or more" : "");
    const ok = await confirmAction(
      `Cancel the unfinished jobs among the ${n} jobs that match this filter? Running jobs are asked to stop.`,
      "Cancel jobs",
    );
    if (!ok) return;
    try {
      const outcome = await post("/api/jobs/cancel", { filter: { ...filter, label: filter.labels }, reason: "bulk cancel from the dashboard" });
      message.replaceChildren(h("p", { role: "status" }, `Cancelled ${outcome.cancelled} of ${outcome.matched} unfinished jobs.`));
      count();
    } catch (err) {
      showError(message, err);
    }
  });

  // Live rows: the feed pushes each changed job's latest row; rows on screen are updated in place,
  // and new jobs appear at the top of the first page when they match the filter.
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => liveState(true));
  source.addEventListener("error", () => liveState(false));
  source.addEventListener("resync", () => load(pageToken));
  source.addEventListener("jobs", (e) => {
    for (const job of JSON.parse(e.data)) {
      const tr = tbody.querySelector(`tr[data-job-id="${job.id}"]`);
      if (tr) {
        if (matches(job, filter)) refreshRow(tr, job);
        else tr.remove();
      } else if (!pageToken && matches(job, filter)) {
        tbody.querySelector("td[colspan]")?.parentElement.remove();
        const fresh = row(job);
        fresh.classList.add("flash");
        const later = (tr) => (tr.dataset.created || "") < job.create_time;
        const before = [...tbody.children].find(later);
        if (before) tbody.insertBefore(fresh, before);
        else if (tbody.children.length < PAGE_SIZE) tbody.append(fresh);
        while (tbody.children.length > PAGE_SIZE) tbody.lastElementChild.remove();
      }
    }
  });

  load("");
  count().catch(() => {});
  return () => {
    source.close();
    liveState(false);
  };
}
