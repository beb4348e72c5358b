// One job: its fields, a live progress bar and a timeline built from its events, all from one event
// stream (/api/jobs/{id}/stream: the snapshot, then every event; EventSource resumes after the last
// sequence by itself). Actions: cancel, retry, delete, each confirmed first.

import { ApiError, del, get, post } from "./api.js";
import { badge, confirmAction, h, liveState, progressBar, setProgress, showError, when } from "./ui.js";

function json(value) {
  return h("pre", { class: "mono" }, JSON.stringify(value, null, 2));
}

function fields(job) {
  const items = [
    ["Status", badge(job.status)],
    ["Type", job.job_type],
    ["Lifecycle", job.lifecycle],
    ["Attempt", `${job.attempt} of ${job.max_attempts}`],
    ["Priority", job.priority],
    ["Labels", Object.keys(job.labels).length ? Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(", ") : "—"],
    ["Worker", job.worker_id || "—"],
    ["Created", when(job.create_time)],
    ["Started", when(job.start_time) || "—"],
    ["Ended", when(job.complete_time) || "—"],
    ["Deadline", when(job.deadline) || "—"],
    ["Stop reason", job.stop_reason === "UNSPECIFIED" || !job.stop_reason ? "—" : job.stop_reason],
    ["Cancel requested", job.cancel_requested ? "yes" : "no"],
    ["Callback", job.callback_url ? `${job.callback_url} (${job.callback_state}, ${job.callback_attempts} attempts)` : "—"],
    ["Retry of", job.retry_of ? h("a", { href: `#/jobs/${job.retry_of}` }, job.retry_of) : "—"],
    ["Parent", job.parent_id ? h("a", { href: `#/jobs/${job.parent_id}` }, job.parent_id) : "—"],
    ["Parameters", json(job.parameters)],
    ["Result", job.result ? json(job.result) : "—"],
    ["Error", job.error ? `${job.error.message}${job.error.reason ? ` (${job.error.reason})` : ""}` : "—"],
  ];
  return h("dl", { class: "fields", id: "job-fields" }, items.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// A lease rescue is the server taking a job back from a worker whose lease ran out.
function isRescue(event) {
  const d = event.data;
  return event.kind === "transition" && d.from === "RUNNING" && event.actor === "system" && (d.stop_reason === "LEASE_EXPIRED" || /lease/i.test(d.reason || ""));
}

function describe(event) {
  const d = event.data;
  switch (event.kind) {
    case "created":
      return `created in ${d.status}`;
    case "transition":
      return `${d.from} → ${d.to}${d.reason ? `: ${d.reason}` : ""}${d.stop_reason && d.stop_reason !== "UNSPECIFIED" ? ` [${d.stop_reason}]` : ""}`;
    case "progress":
      return `${Math.round(d.percent)}%${d.total ? ` (${d.done}/${d.total})` : ""}${d.message ? ` ${d.message}` : ""}`;
    case "asset_added":
      return `${d.asset_type || "asset"} ${d.uri || d.storage_path || ""}`;
    case "log":
      return `[${d.level || "INFO"}] ${d.message || ""}${d.data !== undefined && d.data !== null ? ` ${JSON.stringify(d.data)}` : ""}`;
    case "cancel_requested":
      return `cancel requested${d.reason ? `: ${d.reason}` : ""}`;
    case "callback_attempt":
      return `callback attempt ${d.attempt}: ${d.http_status ? `HTTP ${d.http_status}` : "no answer"}${d.error ? ` (${d.error})` : ""} → ${d.state}`;
    default:
      return JSON.stringify(d);
  }
}

function eventItem(event) {
  const rescue = isRescue(event);
  const kind = rescue ? "lease rescue" : event.kind.replace("_", " ");
  return h(
    "li",
    { "data-sequence": String(event.sequence), "data-kind": event.kind },
    h("span", { class: "seq" }, `#${event.sequence}`),
    h("span", { class: `kind kind-${rescue ? "rescue" : event.kind}` }, kind),
    h("div", {}, h("div", {}, describe(event)), h("span", { class: "actor" }, event.actor), " ", when(event.time)),
  );
}

export function jobView(root, jobId, session) {
  let job = null;
  const title = h("h1", {}, "Job ", h("span", { class: "mono" }, jobId));
  const bar = progressBar({ progress: { percent: 0 } }, true);
  bar.id = "job-progress";
  const progressText = h("div", { class: "muted", id: "progress-message" });
  const fieldsCard = h("div", { class: "card" });
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const message = h("div");
  const cancel = h("button", { class: "danger", type: "button", id: "cancel-job" }, "Cancel…");
  const retry = h("button", { class: "secondary", type: "button", id: "retry-job" }, "Retry…");
  const remove = h("button", { class: "secondary", type: "button", id: "delete-job" }, "Delete…");
  root.replaceChildren(
    title,
    h("div", { class: "card" }, bar, progressText, h("div", { class: "bar-actions" }, cancel, retry, remove)),
    message,
    fieldsCard,
    h("h2", {}, "Timeline"),
    h("div", { class: "card" }, timeline),
  );

  function show(next) {
    job = next;
    setProgress(bar, job.progress.percent);
    progressText.textContent = job.progress.message || "";
    fieldsCard.replaceChildren(fields(job));
    cancel.disabled = job.terminal || job.cancel_requested;
    retry.disabled = !job.terminal || !session.roles.includes("admin");
    remove.disabled = !job.terminal;
  }

  function apply(event) {
    if (timeline.querySelector(`li[data-sequence="${event.sequence}"]`)) return;
    timeline.append(eventItem(event));
    if (!job) return;
    const changed = { ...job, last_sequence: event.sequence, update_time: event.time };
    if (event.kind === "progress") {
      changed.progress = { ...job.progress, ...event.data };
    } else if (event.kind === "transition") {
      changed.status = event.data.to;
      changed.terminal = ["COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED"].includes(event.data.to);
    } else if (event.kind === "cancel_requested") {
      changed.cancel_requested = true;
    }
    show(changed);
  }

  const source = new EventSource(`/api/jobs/${encodeURIComponent(jobId)}/stream`);
  source.addEventListener("open", () => liveState(true));
  source.addEventListener("job", (e) => show(JSON.parse(e.data)));
  source.addEventListener("event", (e) => apply(JSON.parse(e.data)));
  source.addEventListener("end", async () => {
    source.close();
    liveState(false);
    // The job's history ended: its final row has fields no event carries (result, error).
    try {
      show(await get(`/api/jobs/${encodeURIComponent(jobId)}`));
    } catch (err) {
      showError(message, err);
    }
  });
  source.addEventListener("error", async () => {
    liveState(false);
    if (source.readyState === EventSource.CLOSED) {
      // Refused outright (not found, no access): say why.
      try {
        await get(`/api/jobs/${encodeURIComponent(jobId)}`);
      } catch (err) {
        showError(message, err);
      }
    }
  });

  async function act(text, label, action) {
    if (!(await confirmAction(text, label))) return;
    try {
      await action();
    } catch (err) {
      showError(message, err instanceof ApiError ? err : new Error(String(err)));
    }
  }

  cancel.addEventListener("click", () =>
    act(`Cancel job ${jobId}?${job?.status === "RUNNING" ? " Its worker is asked to stop." : ""}`, "Cancel job", async () => {
      show(await post(`/api/jobs/${encodeURIComponent(jobId)}/cancel`, { reason: "cancelled from the dashboard" }));
    }),
  );
  retry.addEventListener("click", () =>
    act(`Run job ${jobId} again as a new job?`, "Retry", async () => {
      const fresh = await post(`/api/jobs/${encodeURIComponent(jobId)}/retry`, {});
      location.hash = `#/jobs/${fresh.id}`;
    }),
  );
  remove.addEventListener("click", () =>
    act(`Delete job ${jobId} with its history and assets? This cannot be undone.`, "Delete", async () => {
      await del(`/api/jobs/${encodeURIComponent(jobId)}`);
      location.hash = "#/";
    }),
  );

  return () => {
    source.close();
    liveState(false);
  };
}
