// A stream the server refuses (404 unknown topic, 401 bad key) makes the
// browser's EventSource give up: readyState CLOSED and no further request.
// The page talks to the server through the Go test's counting proxy, which
// says how many requests, with which statuses, each path saw.
import assert from "node:assert/strict";
import { control, createTopic, multi, openBlank, record, snapshot, streamPath, uniqueTopic, waitStream } from "../lib.mjs";

export default {
  name: "refused_stream_stops_reconnecting",
  async run({ page, env }) {
    const s = env.servers.proxy;
    const real = uniqueTopic("real");
    const missing = uniqueTopic("missing");
    await createTopic(s, real);
    await openBlank(page, s);

    const streams = {
      unknownTopic: { path: streamPath(s, { topics: [missing] }), status: 404 },
      unknownInMulti: { path: streamPath(s, { topics: multi(real, missing) }), status: 404 },
      badKey: { path: streamPath(s, { topics: [real], key: "hk_not_a_key" }), status: 401 },
    };
    for (const [name, st] of Object.entries(streams)) await record(page, name, st.path);
    for (const name of Object.keys(streams)) {
      await waitStream(page, name, (x) => x.readyState === 2, `${name}: EventSource CLOSED after its first answer`);
    }

    // Nothing can prove a request never comes; wait longer than any retry
    // delay the browser could use (the server's is 2 s, Chromium's own
    // default 3 s) and count.
    await new Promise((r) => setTimeout(r, 3_500));
    for (const [name, st] of Object.entries(streams)) {
      const snap = await snapshot(page, name);
      assert.equal(snap.readyState, 2, `${name}: still CLOSED`);
      assert.equal(snap.opens, 0, `${name}: never opened`);
      assert.deepEqual(snap.errors, [2], `${name}: one error event, with readyState CLOSED`);
      const seen = await control(`/requests?path=${encodeURIComponent(st.path.split("?")[0])}`, "GET");
      assert.deepEqual(seen.statuses, [st.status], `${name}: the server saw exactly one request, answered ${st.status}`);
    }
  },
};
