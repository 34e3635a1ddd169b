// Browser tokens in a real browser, through the Go test's counting proxy
// (which says how many requests each path saw, with which statuses).
//
//   - A stream ends with its token: `event: token_expired`, then the
//     browser's own reconnect, with the same expired token, gets 401 and
//     leaves the EventSource CLOSED.
//   - A token used on a topic it does not name gets 403: CLOSED.
//   - An already expired token gets 401, and the body says token_expired.
//   - The README's browser example, run as the README gives it (only its
//     placeholders filled in), recovers: on token_expired it mints a new
//     token and resumes with ?last_event_id=, and a message published
//     while it had no stream arrives, with no gap and no duplicate.
//
// Node plays the app's backend: it mints the tokens.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import {
  appPath, control, createTopic, mintToken, openBlank, publish, record, snapshot, streamPath, uniqueTopic, waitFor,
  waitStream,
} from "../lib.mjs";

const readmePath = new URL("../../../README.md", import.meta.url);

// readmeExample returns the JavaScript of the README's "In a browser"
// section, ready to run on a page: mintToken asks Node (the backend here)
// through backendMintToken, and Herald's placeholder URL is the server's.
// The rest is the README's text as it stands.
async function readmeExample(heraldURL, app) {
  const readme = await fs.readFile(readmePath, "utf8");
  const section = readme.slice(readme.indexOf("### In a browser"));
  const block = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "README: a ```js block under ### In a browser");
  let code = block[1];
  assert.ok(code.includes("function follow(") && code.includes('"token_expired"'), "README: the first js block of In a browser is the follow() example");
  const mintLine = /^const mintToken = .*$/m;
  assert.match(code, mintLine, "README: the example defines mintToken on a line of its own");
  code = code.replace(mintLine, "const mintToken = () => window.backendMintToken(); // the backend is Node, here");
  assert.ok(code.includes("https://herald.example.com"), "README: the example's Herald URL is https://herald.example.com");
  code = code.replaceAll("https://herald.example.com", heraldURL);
  return `const app = ${JSON.stringify(app)};\n${code}`;
}

// trackEventSources makes every EventSource the page creates from now on
// record its URL, opens, errors and events beside whatever the page's own
// code does with it, so that the README's streams can be watched.
function trackEventSources(page) {
  return page.evaluate(() => {
    window.__sources = [];
    const Native = window.EventSource;
    window.EventSource = class extends Native {
      constructor(url, init) {
        super(url, init);
        const r = { url: String(url), opens: 0, errors: [], events: [] };
        window.__sources.push({ es: this, r });
        this.addEventListener("open", () => r.opens++);
        this.addEventListener("error", () => r.errors.push(this.readyState));
        for (const type of ["message", "token_expired", "lagged", "topic_deleted"]) {
          this.addEventListener(type, (e) => r.events.push({ type, data: JSON.parse(e.data), lastEventId: e.lastEventId }));
        }
      }
    };
  });
}

const sources = (page, pathname) =>
  page.evaluate(
    (pathname) =>
      window.__sources
        .filter(({ r }) => new URL(r.url, location.href).pathname === pathname)
        .map(({ es, r }) => ({ ...r, readyState: es.readyState })),
    pathname,
  );

const statuses = async (path) => (await control(`/requests?path=${encodeURIComponent(path)}`, "GET")).statuses;

export default {
  name: "expired_token",
  async run({ page, env }) {
    const s = env.servers.tokens; // its app has the README's topics, orders and stock
    const a = uniqueTopic("a");
    const b = uniqueTopic("b");
    const c = uniqueTopic("c");
    for (const t of [a, b, c]) await createTopic(s, t);
    // Expired by the time it is used, below.
    const expired = await mintToken(s, [c], "1s");

    await openBlank(page, s);
    await trackEventSources(page);
    const consoleLines = [];
    page.on("console", (m) => {
      // console.log's arguments as values; a page closing under it must not
      // leave a rejected promise unhandled.
      const args = m.type() === "log" ? Promise.all(m.args().map((x) => x.jsonValue())).catch((e) => [`unreadable: ${e.message}`]) : null;
      consoleLines.push({ type: m.type(), text: m.text(), args });
    });

    // The backend. Its first token lives 2 to 3 s (expiry has one-second
    // precision); when the page asks for the second one, the first stream
    // has ended, so a message published now falls in the page's gap.
    const minted = [];
    await page.exposeFunction("backendMintToken", async () => {
      if (minted.length === 1) await publish(s, "orders", JSON.stringify({ n: 2 }));
      const tok = await mintToken(s, ["orders", "stock"], minted.length === 0 ? "3s" : "5m");
      minted.push(tok);
      return tok.token;
    });

    // A page that ignores token_expired, and one that uses its token on
    // another topic.
    const tok = await mintToken(s, [a], "3s");
    await record(page, "plain", streamPath(s, { topics: [a], key: tok.token }));
    await record(page, "otherTopic", streamPath(s, { topics: [b], key: tok.token }));
    const why = await page.evaluate(async (url) => (await fetch(url)).json(), streamPath(s, { topics: [b], key: tok.token }));
    assert.equal(why.error.code, "topic_not_allowed", `a token on another topic: the 403 says why: ${JSON.stringify(why)}`);
    assert.ok(why.error.message.includes(`"${b}"`), `and names the topic: ${why.error.message}`);
    // The README's example.
    await page.addScriptTag({ type: "module", content: await readmeExample(s.url, s.app) });

    const multiPath = `${appPath(s)}/events`;
    await waitStream(page, "plain", (x) => x.opens === 1, "the stream with a 3 s token to open");
    await waitFor(async () => (await sources(page, multiPath))[0]?.opens === 1, "the README example's stream to open");
    await publish(s, a, JSON.stringify({ n: 1 }));
    await publish(s, "orders", JSON.stringify({ n: 1 }));

    // The stream that ignores token_expired: the server ends it, the
    // browser reconnects with the expired token, gets 401 and gives up.
    const plain = await waitStream(page, "plain", (x) => x.readyState === 2, "the expired stream to end CLOSED", { timeout: 10_000 });
    assert.deepEqual(
      plain.events.map((e) => [e.type, e.parsed]),
      [
        ["message", { id: "1", topic: a, message: { n: 1 }, published_at: plain.events[0].parsed.published_at }],
        ["token_expired", { expired_at: tok.expires_at }],
      ],
      "the message, then token_expired naming the token's expiry",
    );
    assert.equal(plain.opens, 1, "opened once: the reconnect was refused");
    assert.deepEqual(plain.errors, [0, 2], "the end of the stream (CONNECTING, reconnecting), then the refused reconnect (CLOSED)");
    assert.deepEqual(await statuses(`${appPath(s)}/topics/${a}/events`), [200, 401], "the server saw the stream, then one reconnect it refused");

    const other = await snapshot(page, "otherTopic");
    assert.deepEqual(
      { opens: other.opens, errors: other.errors, events: other.events, readyState: other.readyState },
      { opens: 0, errors: [2], events: [], readyState: 2 },
      "a token used on a topic it does not name: refused, CLOSED",
    );
    assert.deepEqual(await statuses(`${appPath(s)}/topics/${b}/events`), [403, 403], "the other topic: the fetch and the EventSource, both 403");

    // The README example: by now it has minted a second token and resumed.
    await waitFor(async () => (await sources(page, multiPath))[1]?.opens === 1, "the README example to resume on a new stream");
    await publish(s, "orders", JSON.stringify({ n: 3 }));
    const logged = await waitFor(async () => {
      const lines = consoleLines.filter((l) => l.type === "log");
      return lines.length >= 3 ? Promise.all(lines.map((l) => l.args)) : null;
    }, () => `3 messages logged by the README example's onmessage; the page logged ${JSON.stringify(consoleLines.map((l) => l.text))}`);
    assert.deepEqual(
      logged,
      [["orders", "1", { n: 1 }], ["orders", "2", { n: 2 }], ["orders", "3", { n: 3 }]],
      "the README example logs every message once, in order, across the token's expiry: 2 was published while it had no stream",
    );
    const [first, second, ...more] = await sources(page, multiPath);
    assert.equal(more.length, 0, "the README example opened two streams");
    assert.equal(minted.length, 2, "and minted two tokens");
    assert.deepEqual(first.events.map((e) => e.type), ["message", "token_expired"], "the first stream: a message, then token_expired");
    assert.deepEqual(first.events[1].data, { expired_at: minted[0].expires_at }, "token_expired names the first token's expiry");
    assert.deepEqual([first.readyState, first.errors], [2, []], "the example closed the first stream itself, before any reconnect");
    const resume = new URL(second.url);
    assert.equal(resume.searchParams.get("access_token"), minted[1].token, "the second stream uses the new token");
    assert.equal(resume.searchParams.get("last_event_id"), first.events[0].lastEventId, "and resumes after the last message of the first");
    assert.deepEqual(
      second.events.map((e) => [e.data.id, e.data.message]),
      [["2", { n: 2 }], ["3", { n: 3 }]],
      "the second stream replays the message of the gap, then goes on live",
    );
    assert.deepEqual(await statuses(multiPath), [200, 200], "the README example never reconnects with an expired token");
    assert.deepEqual(
      consoleLines.filter((l) => /^(lost \d+ events|topic gone|stream refused)/.test(l.text)).map((l) => l.text),
      [],
      "the README example's other handlers (lagged, topic_deleted, a refused stream) had nothing to say",
    );

    // An already expired token: 401, and the body says so.
    const wait = Date.parse(expired.expires_at) - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait + 50));
    const cPath = streamPath(s, { topics: [c], key: expired.token });
    const res = await page.evaluate(async (url) => {
      const res = await fetch(url);
      return { status: res.status, body: await res.json(), wwwAuthenticate: res.headers.get("WWW-Authenticate") };
    }, cPath);
    assert.equal(res.status, 401, "an expired token");
    assert.equal(res.body.error.code, "token_expired", `the body says the token expired: ${JSON.stringify(res.body)}`);
    assert.ok(res.body.error.message.includes(expired.expires_at), `and when: ${res.body.error.message}`);
    assert.match(res.wwwAuthenticate ?? "", /error="invalid_token"/, "WWW-Authenticate: invalid_token");
    await record(page, "expired", cPath);
    const exp = await waitStream(page, "expired", (x) => x.readyState === 2, "an EventSource with an expired token to be refused");
    assert.deepEqual([exp.opens, exp.errors, exp.events], [0, [2], []], "refused at once, nothing delivered");
    assert.deepEqual(await statuses(`${appPath(s)}/topics/${c}/events`), [401, 401], "the server saw the fetch and the EventSource, both 401");
  },
};
