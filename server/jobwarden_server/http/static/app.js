// The dashboard's router: #/ (jobs), #/jobs/<id>, #/queues, #/login. Asks who is calling first:
// in local mode there is no login; with tokens, a 401 shows the login form.

import { ApiError, call, get } from "./api.js";
import { jobView } from "./job.js";
import { jobsView } from "./jobs.js";
import { queuesView } from "./queues.js";
import { h, showError } from "./ui.js";

const view = document.getElementById("view");
let leave = () => {};
let session = null;

function loginView(failed) {
  const error = h("p", { class: "error", role: "alert" }, failed ? "That token was not accepted." : "");
  const input = h("input", { type: "password", name: "token", id: "token", autocomplete: "current-password", required: true });
  view.replaceChildren(
    h(
      "div",
      { class: "card login" },
      h("h1", {}, "Sign in"),
      h(
        "form",
        {
          onsubmit: async (e) => {
            e.preventDefault();
            try {
              await call("POST", "/api/session", { token: input.value });
              session = null; // whoami again: the header shows the new owner
              if (location.hash === "#/" || location.hash === "") route();
              else location.hash = "#/";
            } catch (err) {
              error.textContent = err instanceof ApiError && err.status === 401 ? "That token was not accepted." : err.message;
            }
          },
        },
        h("label", {}, "Token (the same bearer token as for gRPC)", input),
        h("button", { type: "submit" }, "Sign in"),
        error,
      ),
    ),
  );
  input.focus();
}

async function whoami() {
  try {
    session = await get("/api/session");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    session = null;
  }
  const who = document.getElementById("who");
  who.replaceChildren();
  if (session) {
    who.append(session.local ? "local mode" : `${session.owner} `);
    if (!session.local) {
      who.append(
        h("a", {
          href: "#/login",
          onclick: async () => {
            await call("DELETE", "/api/session");
            session = null;
          },
        }, "sign out"),
      );
    }
  }
}

async function route() {
  leave();
  leave = () => {};
  const hash = location.hash || "#/";
  if (hash.startsWith("#/login")) {
    loginView(false);
    return;
  }
  if (hash === "#login-failed") {
    loginView(true);
    return;
  }
  if (!session) {
    try {
      await whoami();
    } catch (err) {
      showError(view, err);
      return;
    }
    if (!session) {
      loginView(false);
      return;
    }
  }
  const [path, query] = hash.slice(1).split("?");
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", (a.dataset.nav === "queues") === path.startsWith("/queues") && !path.startsWith("/jobs/"));
  }
  if (path.startsWith("/jobs/")) {
    leave = jobView(view, decodeURIComponent(path.slice("/jobs/".length)), session);
  } else if (path.startsWith("/queues")) {
    leave = queuesView(view);
  } else {
    leave = jobsView(view, new URLSearchParams(query || ""));
  }
}

window.addEventListener("hashchange", route);
route();
