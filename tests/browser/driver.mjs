// A tiny remote control for headless Chromium, driven by tests/browser/*.py over stdin/stdout: one
// JSON command per line in, one JSON answer per line out. Each command names a session (a browser
// context of its own: its own cookies, so two owners can be signed in side by side).
//
// Chromium is Debian's (/usr/bin/chromium); playwright-core never downloads a browser. launch() starts
// it with a fresh --user-data-dir of its own (a temporary profile, removed at exit), and every session
// is a new incognito-like context inside it.

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const TIMEOUT_MS = 10000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const sessions = new Map();

async function session(name, viewport) {
  if (!sessions.has(name)) {
    const context = await browser.newContext({ viewport: viewport || { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on("dialog", (d) => d.dismiss());
    const errors = [];
    page.on("pageerror", (err) => errors.push(String(err)));
    sessions.set(name, { context, page, errors });
  }
  const s = sessions.get(name);
  if (viewport) await s.page.setViewportSize(viewport);
  return s;
}

const commands = {
  async goto({ page }, { url }) {
    await page.goto(url);
    return page.url();
  },
  async waitFor({ page }, { selector, text, state }) {
    const locator = text ? page.locator(selector, { hasText: text }) : page.locator(selector);
    await locator.first().waitFor({ state: state || "visible" });
    return true;
  },
  async waitAttr({ page }, { selector, name, value }) {
    await page.waitForFunction(
      ([sel, attr, want]) => document.querySelector(sel)?.getAttribute(attr) === want,
      [selector, name, value],
    );
    return true;
  },
  async click({ page }, { selector }) {
    await page.locator(selector).first().click();
    return true;
  },
  async fill({ page }, { selector, value }) {
    await page.locator(selector).first().fill(value);
    return true;
  },
  async check({ page }, { selector }) {
    await page.locator(selector).first().check();
    return true;
  },
  async count({ page }, { selector }) {
    return await page.locator(selector).count();
  },
  async text({ page }, { selector }) {
    return await page.locator(selector).first().textContent();
  },
  async screenshot({ page }, { path, fullPage }) {
    await page.screenshot({ path, fullPage: !!fullPage });
    return path;
  },
  async errors(s) {
    return s.errors;
  },
};

const lines = createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
for await (const line of lines) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  let answer;
  try {
    const s = await session(request.session || "main", request.viewport);
    answer = { ok: true, value: await commands[request.cmd](s, request) };
  } catch (err) {
    answer = { ok: false, error: String(err && err.message ? err.message : err).split("\n").slice(0, 6).join("\n") };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
