// A Last-Event-ID older than the server's history gets `event: lagged` with
// the exact count before the oldest message kept, in a raw EventSource and
// in the dashboard's tail. The "lag" server keeps 3 messages per topic and
// prunes every 10 ms (see browser_test.go).
import assert from "node:assert/strict";
import {
  createTopic, dashboardConnect, history, openBlank, publish, record, streamPath, tailRows, uniqueTopic, waitFor, waitStream,
} from "../lib.mjs";

export default {
  name: "lagged_event",
  async run({ page, context, env }) {
    const s = env.servers.lag;
    const topic = uniqueTopic("lag");
    await createTopic(s, topic);
    for (let i = 1; i <= 10; i++) await publish(s, topic, JSON.stringify({ n: i }));
    await waitFor(
      async () => (await history(s, topic)).length === 3,
      "the server to prune the topic's history down to 3 messages",
    );

    // Resume after id 2: ids 3..7 are gone, 8..10 are kept.
    await openBlank(page, s);
    await record(page, "lag", streamPath(s, { topics: [topic], lastEventID: "2" }));
    const snap = await waitStream(page, "lag", (x) => x.events.length >= 4, "lagged and 3 messages");
    assert.deepEqual(
      snap.events.map((e) => (e.type === "message" ? `message ${e.parsed.id} n=${e.parsed.message.n}` : `${e.type} ${e.data}`)),
      [`lagged {"missed":5,"topic":"${topic}"}`, "message 8 n=8", "message 9 n=9", "message 10 n=10"],
      "the lagged event comes first with the exact count, then the kept messages in order",
    );
    assert.equal(snap.readyState, 1, "the stream stays open after lagged");

    // The dashboard shows it too: replaying kept history from the start
    // misses ids 1..7.
    const dash = await context.newPage();
    await dashboardConnect(dash, s);
    await dash.getByLabel(topic, { exact: true }).check();
    await dash.getByLabel("Replay kept history").check();
    await dash.getByRole("button", { name: "Tail selected" }).click();
    let rows;
    await waitFor(
      async () => (rows = await tailRows(dash)).length >= 4,
      () => `the dashboard tail to show a lag notice and 3 messages, it shows ${JSON.stringify(rows)}`,
    );
    assert.equal(rows[0].kind, "lagged", `first tail row: ${JSON.stringify(rows[0])}`);
    assert.match(rows[0].text, new RegExp(`^Missed 7 messages on ${topic}:`), "the notice gives the count and the topic");
    assert.deepEqual(
      rows.slice(1).map((r) => [r.topic, r.id, r.message]),
      [[topic, "8", { n: 8 }], [topic, "9", { n: 9 }], [topic, "10", { n: 10 }]],
    );
    assert.equal(await dash.locator("#tail-status").getAttribute("data-state"), "live");
  },
};
