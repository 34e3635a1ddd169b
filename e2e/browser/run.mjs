// Runs every browser case against the Herald servers the Go test started
// (go test ./e2e/browser), in ONE headless Debian Chromium, one fresh page
// per case. It prints one machine-readable line per case for the Go side:
//
//   HERALD_PLAN ["case", ...]
//   HERALD_CASE {"name", "ok", "error", "ms", "artifacts"}
//
// and exits non-zero when any case failed. HERALD_BROWSER_CASES (a regular
// expression) runs only the matching cases, for working on one.

import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

import { env } from "./lib.mjs";
import cases from "./cases/index.mjs";

const only = process.env.HERALD_BROWSER_CASES ? new RegExp(process.env.HERALD_BROWSER_CASES) : null;
const selected = cases.filter((c) => !only || only.test(c.name));
console.log("HERALD_PLAN " + JSON.stringify(selected.map((c) => c.name)));

const report = (r) => console.log("HERALD_CASE " + JSON.stringify(r));

function withTimeout(promise, ms, name) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`case ${name} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A fresh profile per run: no cache, cookies or storage from an earlier one.
const userDataDir = await fs.mkdtemp(path.join(os.tmpdir(), "herald-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: env.chromium,
    headless: true,
    // These keep Chromium off the network (this machine has none beyond
    // loopback) and quick to start.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1360, height: 900 },
    timeout: 60_000,
  });
} catch (e) {
  for (const c of selected) report({ name: c.name, ok: false, error: `could not start Chromium at ${env.chromium}: ${e.message}` });
  await fs.rm(userDataDir, { recursive: true, force: true });
  process.exit(1);
}

let failed = 0;
const blank = context.pages()[0] ?? (await context.newPage()); // keeps the browser's one window
for (const c of selected) {
  const started = Date.now();
  const page = await context.newPage();
  const problems = [];
  // Any uncaught exception in a page, and anything the CSP blocked, fails
  // the case whatever it checks itself.
  const watch = (p) => {
    p.on("pageerror", (e) => problems.push(`uncaught exception in ${p.url()}: ${e.message}`));
    p.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) {
        problems.push(`blocked by the Content-Security-Policy in ${p.url()}: ${m.text()}`);
      }
    });
  };
  watch(page);
  context.on("page", watch);
  const artifacts = [];
  let error = null;
  try {
    await withTimeout(c.run({ page, context, env, artifacts }), c.timeoutMs ?? 30_000, c.name);
    if (problems.length) throw new Error(problems.join("\n"));
  } catch (e) {
    error = (e && e.stack) || String(e);
    failed++;
  } finally {
    context.off("page", watch);
    for (const p of context.pages()) if (p !== blank) await p.close().catch(() => {});
  }
  report({ name: c.name, ok: !error, error, ms: Date.now() - started, artifacts });
}

await context.close();
await fs.rm(userDataDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
