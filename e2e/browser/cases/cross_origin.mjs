// A page of another origin uses Herald with credentials. The cors server
// lists the origin of the "allowed" page server in CORSOrigins; the
// "refused" page server (another site, on 127.0.0.2) is listed nowhere.
//
// From the allowed page: a credentialed fetch POST with Authorization and
// Content-Type (which takes a real preflight), an EventSource with
// ?access_token= and withCredentials, and one authenticated by the
// README's HttpOnly cookie alone, all work. From the refused page the same
// fetch rejects, its POST never reaches the server, and the EventSource
// fails without delivering anything, while the server's log names the
// refused origin. Node checks the headers themselves: the exact origin,
// credentials allowed, never "*".
//
// (The page holds a full key here to publish cross-origin; a real page
// must not, see the README.)
import assert from "node:assert/strict";
import {
  appPath, createTopic, history, messages, mintToken, publish, record, serverLog, snapshot, streamPath, uniqueTopic,
  waitFor, waitStream,
} from "../lib.mjs";

// An origin listed nowhere, for the checks from Node: its refusals are
// logged apart from the refused page's.
const unlisted = "https://not-listed.example";

const corsHeaders = (h) => Object.fromEntries([...h].filter(([k]) => k.startsWith("access-control-")));

// assertAllowed checks the CORS headers an answer to the allowed origin
// carries: its exact value with credentials, whatever the answer.
function assertAllowed(res, origin, what) {
  assert.equal(res.headers.get("access-control-allow-origin"), origin, `${what}: Access-Control-Allow-Origin is the exact origin, never *`);
  assert.equal(res.headers.get("access-control-allow-credentials"), "true", `${what}: credentials allowed`);
  assert.match(res.headers.get("vary") ?? "", /(^|,\s*)Origin(\s*,|$)/, `${what}: Vary: Origin`);
}

// requests lists "METHOD status" of the requests the server logged for
// path, in order.
const requests = (records, path) => records.filter((r) => r.msg === "request" && r.path === path).map((r) => `${r.method} ${r.status}`);
const refusals = (records, origin) => records.filter((r) => r.origin === origin && r.msg.startsWith("cross-origin request refused"));

// pagePost is the page's credentialed fetch POST of body; it returns the
// answer, or the error the fetch rejected with.
function pagePost(page, url, key, body) {
  return page.evaluate(
    async ({ url, key, body }) => {
      try {
        const res = await fetch(url, {
          method: "POST",
          credentials: "include",
          headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
          body,
        });
        return { status: res.status, body: await res.json() };
      } catch (e) {
        return { rejected: e.name, typeError: e instanceof TypeError };
      }
    },
    { url, key, body },
  );
}

export default {
  name: "cross_origin_credentials",
  async run({ page, context, env }) {
    const s = env.servers.cors;
    const herald = new URL(s.url).origin;
    const allowed = new URL(env.pages.allowed).origin;
    const refused = new URL(env.pages.refused).origin;
    assert.ok(new Set([herald, allowed, refused]).size === 3, `three distinct origins: ${herald} ${allowed} ${refused}`);
    const t = uniqueTopic("xo");
    const r = uniqueTopic("xo-refused");
    await createTopic(s, t);
    await createTopic(s, r);
    const messagesPath = (topic) => `${appPath(s)}/topics/${topic}/messages`;

    // What the allowed origin gets, seen from Node. These go to paths the
    // page does not POST to, so that the server's log of the page's path
    // holds only the browser's requests.
    const pre = await fetch(s.url + messagesPath(uniqueTopic("probe")), {
      method: "OPTIONS",
      headers: { Origin: allowed, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type" },
    });
    assert.equal(pre.status, 204, "preflight of the allowed origin");
    assertAllowed(pre, allowed, "preflight");
    assert.ok(pre.headers.get("access-control-allow-methods").split(/,\s*/).includes("POST"), "preflight allows POST");
    assert.deepEqual(
      pre.headers.get("access-control-allow-headers").split(/,\s*/).map((x) => x.toLowerCase()).sort(),
      ["authorization", "cache-control", "content-type", "idempotency-key", "last-event-id"],
      "preflight allows the headers the README lists",
    );
    assert.equal(pre.headers.get("access-control-max-age"), "7200", "preflights are cached 2 h");
    const asAllowed = (path, key = s.fullKey, init = {}) =>
      fetch(s.url + path, { ...init, headers: { Origin: allowed, Authorization: `Bearer ${key}` } });
    const json = await asAllowed(`${appPath(s)}/topics`);
    assert.equal(json.status, 200, "the topic list, from the allowed origin");
    assertAllowed(json, allowed, "a JSON answer");
    const denied = await asAllowed(`${appPath(s)}/topics`, "hk_not_a_key");
    assert.equal(denied.status, 401, "the topic list with a bad key");
    assertAllowed(denied, allowed, "an error");
    const stop = new AbortController();
    const stream = await asAllowed(`${appPath(s)}/topics/${t}/events`, s.subscribeKey, { signal: stop.signal });
    assert.match(stream.headers.get("content-type") ?? "", /^text\/event-stream\b/, "an event stream");
    assertAllowed(stream, allowed, "an event stream");
    stop.abort();
    await json.text();
    await denied.text();

    // The allowed page.
    await page.goto(env.pages.allowed);
    assert.equal(await page.evaluate(() => location.origin), allowed, "the page's origin");
    const tok = await mintToken(s, [t], "5m");
    await record(page, "token", s.url + streamPath(s, { topics: [t], key: tok.token }), { withCredentials: true });
    // The cookie alternative: the page's backend sets the token as an
    // HttpOnly cookie; the EventSource carries it with withCredentials, and
    // without it has no credential at all.
    const login = await page.evaluate(async (topic) => {
      const res = await fetch(`/backend/login?topic=${encodeURIComponent(topic)}`, { method: "POST" });
      return { status: res.status, text: await res.text(), cookies: document.cookie };
    }, t);
    assert.equal(login.status, 204, `the backend's login: ${login.text}`);
    assert.ok(!login.cookies.includes("herald_token"), "the token cookie is HttpOnly: page scripts never see it");
    const cookieURL = `${s.url}${appPath(s)}/events?topic=${t}`;
    await record(page, "cookie", cookieURL, { withCredentials: true });
    await record(page, "noCredentials", cookieURL);
    const settled = (x) => x.opens > 0 || x.readyState === 2;
    for (const [name, what] of [["token", "the ?access_token= stream, withCredentials"], ["cookie", "the stream authenticated by the cookie"]]) {
      const snap = await waitStream(page, name, settled, `${what} to open`);
      assert.deepEqual([snap.opens, snap.readyState], [1, 1], `${what} is open: ${JSON.stringify(snap)}`);
    }
    const noCred = await waitStream(page, "noCredentials", settled, "the stream without credentials to be refused");
    assert.deepEqual([noCred.opens, noCred.readyState], [0, 2], "without credentials no cookie goes, and the stream is refused");

    // A credentialed fetch POST: the browser sends a preflight first.
    const payload = { order: 42, total: 12.5, note: "café ☕ \"quoted\"\n", items: [1, null, true, { deep: [] }] };
    const post = await pagePost(page, s.url + messagesPath(t), s.fullKey, JSON.stringify(payload));
    assert.equal(post.status, 202, `the page's cross-origin POST: ${JSON.stringify(post)}`);
    const want = { id: post.body.id, topic: t, message: payload, published_at: post.body.published_at };
    for (const name of ["token", "cookie"]) {
      const snap = await waitStream(page, name, (x) => messages(x).length === 1, `${name}: the published message`);
      assert.deepEqual(messages(snap)[0].parsed, want, `${name}: the message as published`);
    }
    // Errors reach the page too, with the header that says why.
    const failed = await page.evaluate(async (url) => {
      const res = await fetch(url, { credentials: "include", headers: { Authorization: "Bearer hk_not_a_key" } });
      return { status: res.status, body: await res.json(), wwwAuthenticate: res.headers.get("WWW-Authenticate") };
    }, `${s.url}${appPath(s)}/topics`);
    assert.equal(failed.status, 401);
    assert.equal(failed.body.error.code, "unauthenticated", "the page reads the error's body");
    assert.match(failed.wwwAuthenticate ?? "", /^Bearer /, "WWW-Authenticate is exposed to the page");

    let log = await waitFor(async () => {
      const l = await serverLog("cors");
      return requests(l, messagesPath(t)).length >= 2 && requests(l, `${appPath(s)}/events`).length >= 2 ? l : null;
    }, "the server's log of the page's requests");
    assert.deepEqual(requests(log, messagesPath(t)), ["OPTIONS 204", "POST 202"], "the browser sent a preflight, then the POST");
    assert.deepEqual(requests(log, `${appPath(s)}/events`).sort(), ["GET 200", "GET 401"], "the cookie stream was admitted, the one without credentials refused");
    assert.deepEqual(refusals(log, allowed), [], "nothing from the allowed origin was refused");

    // The refused page. History on r, so that the stream below (resuming
    // from 0) has something the server would send it.
    const kept = { kept: true };
    await publish(s, r, JSON.stringify(kept));
    const other = await context.newPage();
    await other.goto(env.pages.refused);
    assert.equal(await other.evaluate(() => location.origin), refused, "the refused page's origin");
    const attempt = await pagePost(other, s.url + messagesPath(r), s.fullKey, JSON.stringify({ from: "refused" }));
    assert.deepEqual(attempt, { rejected: "TypeError", typeError: true }, "the refused page's fetch rejects with a TypeError");
    const rtok = await mintToken(s, [r], "5m");
    await record(other, "refused", s.url + streamPath(s, { topics: [r], key: rtok.token, lastEventID: "0" }), { withCredentials: true });
    await waitStream(other, "refused", (x) => x.readyState === 2 || x.opens > 0, "the refused page's EventSource to fail");
    await new Promise((res) => setTimeout(res, 300)); // anything the browser would still deliver
    const rsnap = await snapshot(other, "refused");
    assert.deepEqual(
      { opens: rsnap.opens, errors: rsnap.errors, events: rsnap.events, readyState: rsnap.readyState },
      { opens: 0, errors: [2], events: [], readyState: 2 },
      "the refused page's EventSource fails once and delivers nothing",
    );

    log = await waitFor(async () => {
      const l = await serverLog("cors");
      return refusals(l, refused).length >= 2 ? l : null;
    }, "the server's log of the refused page's requests");
    const refusedLog = refusals(log, refused).map((x) => `${x.level} ${x.method} ${x.path}`);
    assert.deepEqual(
      refusedLog,
      [`WARN OPTIONS ${messagesPath(r)}`, `DEBUG GET ${appPath(s)}/topics/${r}/events`],
      "the log names the refused origin: at warn the first time, then at debug",
    );
    assert.deepEqual(requests(log, messagesPath(r)), ["POST 202", "OPTIONS 403"], "the server saw Node's POST and the refused preflight, no POST from the page");
    assert.deepEqual((await history(s, r)).map((m) => m.message), [kept], "the refused page's POST never published");

    // The same refusal seen from Node, from an origin listed nowhere: no
    // CORS header on the answer, a 403 for its preflight.
    const plain = await fetch(`${s.url}${appPath(s)}/topics`, { headers: { Origin: unlisted, Authorization: `Bearer ${s.fullKey}` } });
    assert.equal(plain.status, 200, "the server answers; the browser is what refuses");
    assert.deepEqual(corsHeaders(plain.headers), {}, "no CORS header for an unlisted origin");
    await plain.text();
    const badPre = await fetch(`${s.url}${appPath(s)}/topics`, {
      method: "OPTIONS",
      headers: { Origin: unlisted, "Access-Control-Request-Method": "POST" },
    });
    assert.equal(badPre.status, 403, "preflight of an unlisted origin");
    assert.deepEqual(corsHeaders(badPre.headers), {}, "no CORS header on the refused preflight");
    assert.equal((await badPre.json()).error.code, "origin_not_allowed");

    // And no credential ever reached the log.
    const text = JSON.stringify(await serverLog("cors"));
    for (const secret of [tok.token, rtok.token, s.subscribeKey, s.fullKey]) {
      assert.ok(!text.includes(secret), "the server never logs a token or key");
    }
    assert.ok(text.includes("access_token=REDACTED"), "stream queries are logged redacted");
  },
};
