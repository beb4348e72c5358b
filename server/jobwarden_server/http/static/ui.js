// Small DOM helpers shared by the views: element builder, status badge, progress bar, times, and
// the confirmation dialog every destructive action goes through.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const STATUSES = ["CREATED", "QUEUED", "RUNNING", "COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED"];

export function badge(status) {
  return h("span", { class: `status ${status}`, "data-status": status }, status);
}

export function progressBar(job, big = false) {
  const percent = Math.max(0, Math.min(100, job.progress?.percent || 0));
  const fill = h("span");
  fill.style.width = `${percent}%`;
  return h(
    "div",
    {
      class: big ? "progress big" : "progress",
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(Math.round(percent)),
    },
    fill,
    h("b", {}, `${Math.round(percent)}%`),
  );
}

export function setProgress(bar, percent) {
  const value = Math.max(0, Math.min(100, percent || 0));
  bar.querySelector("span").style.width = `${value}%`;
  bar.querySelector("b").textContent = `${Math.round(value)}%`;
  bar.setAttribute("aria-valuenow", String(Math.round(value)));
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return h("time", { datetime: iso, title: iso }, d.toLocaleString());
}

export function shortId(id) {
  return id.slice(0, 8);
}

// Resolves true when the user confirms `text`.
export function confirmAction(text, yesLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = yesLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

export function showError(where, err) {
  where.replaceChildren(h("p", { class: "error", role: "alert" }, err.message || String(err)));
}

// Live indicator in the header: on while an event stream is open.
export function liveState(on) {
  document.getElementById("live")?.classList.toggle("on", on);
}
