// Helpers the cases share: the Herald API from Node, the Go harness's
// control endpoint, an EventSource recorder inside the page, and the
// dashboard's connect step. Everything talks to real servers the Go test
// started; nothing is mocked.

import assert from "node:assert/strict";

// env is what the Go test passes in HERALD_E2E (see browser_test.go).
export const env = JSON.parse(process.env.HERALD_E2E ?? "null");
if (!env) {
  throw new Error("HERALD_E2E is not set: run these tests with `go test ./e2e/browser`, which starts the servers");
}

let seq = 0;
// uniqueTopic gives each case its own topic on a shared server.
export const uniqueTopic = (prefix) => `${prefix}-${process.pid}-${++seq}`;

// api calls the Herald API of server s from Node with s's full key (or
// opts.key) and returns {status, body} with body decoded when it is JSON.
export async function api(s, method, path, { key = s.fullKey, body } = {}) {
  const res = await fetch(s.url + path, {
    method,
    headers: { Authorization: `Bearer ${key}` },
    body,
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

export const appPath = (s) => `/v1/apps/${encodeURIComponent(s.app)}`;

export async function createTopic(s, topic) {
  const r = await api(s, "PUT", `${appPath(s)}/topics/${topic}`);
  assert.equal(r.status, 201, `create topic ${topic}: ${JSON.stringify(r.body)}`);
}

export async function deleteTopic(s, topic) {
  const r = await api(s, "DELETE", `${appPath(s)}/topics/${topic}`);
  assert.equal(r.status, 204, `delete topic ${topic}: ${JSON.stringify(r.body)}`);
}

// publish sends text as the body, exactly as given, and returns the id.
export async function publish(s, topic, text) {
  const r = await api(s, "POST", `${appPath(s)}/topics/${topic}/messages`, { body: text });
  assert.equal(r.status, 202, `publish to ${topic}: ${JSON.stringify(r.body)}`);
  return r.body.id;
}

export async function history(s, topic) {
  const r = await api(s, "GET", `${appPath(s)}/topics/${topic}/messages?after=0&limit=1000`);
  assert.equal(r.status, 200, `history of ${topic}: ${JSON.stringify(r.body)}`);
  return r.body.messages;
}

export async function topics(s) {
  const r = await api(s, "GET", `${appPath(s)}/topics`);
  assert.equal(r.status, 200, `list topics: ${JSON.stringify(r.body)}`);
  return r.body.topics;
}

// mintToken mints a browser token for topics of s's app with s's full
// key, as an app's backend does, and returns {token, expires_at, topics}.
export async function mintToken(s, topics, ttl) {
  const r = await api(s, "POST", `${appPath(s)}/tokens`, { body: JSON.stringify({ topics, ttl }) });
  assert.equal(r.status, 201, `mint a token for ${topics}: ${JSON.stringify(r.body)}`);
  return r.body;
}

// control asks the Go test to do what only it can (restart a server, count
// the requests a server saw) and returns its JSON answer.
export async function control(path, method = "POST") {
  const res = await fetch(env.control + path, { method });
  const text = await res.text();
  if (!res.ok) throw new Error(`control ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

// serverLog returns what the server named name logged so far, one object
// per record (the Go test keeps the log of the server named cors only).
export async function serverLog(name) {
  return (await control(`/log?server=${name}`, "GET")).records;
}

// streamPath is the path of a stream with the key as ?access_token=, as a
// browser must send it.
export function streamPath(s, { topics, key = s.subscribeKey, lastEventID }) {
  const q = new URLSearchParams();
  let path;
  if (topics.length === 1 && !topics.multi) {
    path = `${appPath(s)}/topics/${topics[0]}/events`;
  } else {
    path = `${appPath(s)}/events`;
    for (const t of topics) q.append("topic", t);
  }
  if (lastEventID !== undefined) q.set("last_event_id", lastEventID);
  q.set("access_token", key);
  return `${path}?${q}`;
}

export const multi = (...topics) => Object.assign(topics, { multi: true });

// openBlank loads a page of server s that runs no script of its own
// (/healthz), so that EventSources opened in it are same-origin.
export async function openBlank(page, s) {
  const res = await page.goto(s.url + "/healthz");
  assert.equal(res.status(), 200, "GET /healthz in the browser");
}

// record opens an EventSource named name in the page (on path, or any URL;
// opts are EventSource's, like {withCredentials: true}) and records every
// open, error (with readyState) and event, message or named.
export async function record(page, name, path, opts = {}) {
  await page.evaluate(
    ({ name, path, opts }) => {
      window.__streams ??= {};
      const es = new EventSource(path, opts);
      const r = { es, opens: 0, errors: [], events: [] };
      window.__streams[name] = r;
      es.onopen = () => r.opens++;
      es.onerror = () => r.errors.push(es.readyState);
      const keep = (e) => {
        let parsed = null;
        try {
          parsed = JSON.parse(e.data);
        } catch {
          // kept raw below; the case decides
        }
        r.events.push({ type: e.type, data: e.data, parsed, lastEventId: e.lastEventId });
      };
      es.onmessage = keep;
      es.addEventListener("lagged", keep);
      es.addEventListener("topic_deleted", keep);
      es.addEventListener("token_expired", keep);
    },
    { name, path, opts },
  );
}

// snapshot returns a recorder's state; readyState 0 connecting, 1 open, 2 closed.
export function snapshot(page, name) {
  return page.evaluate((name) => {
    const r = window.__streams[name];
    return { opens: r.opens, errors: [...r.errors], events: r.events, readyState: r.es.readyState };
  }, name);
}

export function closeStream(page, name) {
  return page.evaluate((name) => window.__streams[name].es.close(), name);
}

// waitFor polls check (sync or async) until it returns a truthy value and
// returns that value; on timeout it throws with what(), which should say
// what was expected and what was seen.
export async function waitFor(check, what, { timeout = 15_000, interval = 25 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) {
      const detail = typeof what === "function" ? await what() : what;
      throw new Error(`timed out after ${timeout} ms waiting for: ${detail}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

// waitStream waits until the recorder named name satisfies check(snapshot).
export async function waitStream(page, name, check, what, opts) {
  let last;
  return waitFor(
    async () => {
      last = await snapshot(page, name);
      return check(last) ? last : null;
    },
    () => `${what}; stream ${name} is ${JSON.stringify(summary(last))}`,
    opts,
  );
}

function summary(snap) {
  if (!snap) return null;
  return {
    opens: snap.opens,
    readyState: snap.readyState,
    errors: snap.errors,
    events: snap.events.map((e) => (e.type === "message" ? `${e.parsed?.topic}#${e.parsed?.id}` : `${e.type}:${e.data}`)),
  };
}

export const messages = (snap) => snap.events.filter((e) => e.type === "message");

// idsByTopic groups message ids by topic, as numbers, in arrival order.
export function idsByTopic(events) {
  const out = {};
  for (const e of events) {
    if (e.type !== "message") continue;
    (out[e.parsed.topic] ??= []).push(Number(e.parsed.id));
  }
  return out;
}

export const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// dashboardConnect loads the dashboard of server s and connects with s's
// app and full key, the way a person does: type, then press Enter.
export async function dashboardConnect(page, s) {
  const res = await page.goto(s.url + "/");
  assert.equal(res.status(), 200, "GET / in the browser");
  await page.locator("#app-id").fill(s.app);
  await page.locator("#app-key").fill(s.fullKey);
  await page.locator("#app-key").press("Enter");
  await page.locator("#workspace").waitFor({ state: "visible", timeout: 10_000 });
  return res;
}

// tailRows returns the dashboard's tail as data: events and notices.
export function tailRows(page) {
  return page.locator("#tail-log > li").evaluateAll((lis) =>
    lis.map((li) =>
      li.dataset.kind
        ? { kind: li.dataset.kind, text: li.textContent }
        : { topic: li.dataset.topic, id: li.dataset.id, message: JSON.parse(li.querySelector("pre").textContent || "null") },
    ),
  );
}

// screenshots saves the page in the light and the dark scheme as
// <name>.png and <name>-dark.png in the artifacts folder, and lists them.
export async function screenshots(page, artifacts, name) {
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    const file = `${env.artifacts}/${name}${scheme === "dark" ? "-dark" : ""}.png`;
    await page.screenshot({ path: file, fullPage: true });
    artifacts.push(file);
  }
  await page.emulateMedia({ colorScheme: null });
}

// visibleText waits until selector is visible and its text matches re.
export async function visibleText(page, selector, re) {
  const loc = page.locator(selector);
  await waitFor(
    async () => (await loc.isVisible()) && re.test(await loc.textContent()),
    async () => `${selector} to show ${re}, it shows ${JSON.stringify(await loc.textContent())} (visible: ${await loc.isVisible()})`,
  );
}
