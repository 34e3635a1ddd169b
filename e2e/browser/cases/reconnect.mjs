// The server restarts (same address, same data directory) under an open
// multi-topic EventSource and an open dashboard tail. The browser
// reconnects by itself with Last-Event-ID; messages published while it was
// away are replayed: every topic's ids come out consecutive, with no gap
// and no duplicate. The dashboard says it was reconnecting, then live.
import assert from "node:assert/strict";
import {
  control, createTopic, dashboardConnect, idsByTopic, messages, multi, openBlank, publish, range, record, streamPath,
  tailRows, uniqueTopic, waitFor, waitStream,
} from "../lib.mjs";

export default {
  name: "reconnect_after_restart",
  timeoutMs: 45_000,
  async run({ page, context, env }) {
    const s = env.servers.restart;
    const a = uniqueTopic("a");
    const b = uniqueTopic("b");
    await createTopic(s, a);
    await createTopic(s, b);

    await openBlank(page, s);
    await record(page, "r", streamPath(s, { topics: multi(a, b) }));
    await waitStream(page, "r", (x) => x.opens === 1, "the stream to open");

    const dash = await context.newPage();
    await dashboardConnect(dash, s);
    await dash.getByLabel(a, { exact: true }).check();
    await dash.getByLabel(b, { exact: true }).check();
    await dash.getByRole("button", { name: "Tail selected" }).click();
    await dash.locator('#tail-status[data-state="live"]').waitFor({ timeout: 10_000 });

    const pub = async (topic, from, to) => {
      for (let i = from; i <= to; i++) await publish(s, topic, JSON.stringify({ topic, n: i }));
    };
    await pub(a, 1, 3);
    await pub(b, 1, 2);
    await waitStream(page, "r", (x) => messages(x).length === 5, "5 messages before the restart");

    // Watch for the dashboard's reconnecting state from before the restart:
    // it lasts at least the server's retry delay (2 s).
    const sawReconnecting = dash
      .locator('#tail-status[data-state="reconnecting"]')
      .waitFor({ state: "attached", timeout: 15_000 })
      .then(() => true, (e) => e);
    await control("/restart?server=restart");
    // Published while the browser waits to reconnect: they come back as
    // replay after Last-Event-ID.
    await pub(a, 4, 5);
    await pub(b, 3, 4);
    const snap1 = await waitStream(page, "r", (x) => x.opens === 2, "the EventSource to reopen on its own", {
      timeout: 15_000,
    });
    assert.ok(snap1.errors.length >= 1 && snap1.errors.every((st) => st === 0), `errors while reconnecting leave readyState CONNECTING: ${snap1.errors}`);
    // And live again after the reconnect.
    await pub(a, 6, 6);
    await pub(b, 5, 5);
    const snap = await waitStream(page, "r", (x) => messages(x).length === 11, "all 11 messages");

    assert.deepEqual(
      idsByTopic(snap.events),
      { [a]: range(1, 6), [b]: range(1, 5) },
      "each topic's ids are consecutive across the restart: no gap, no duplicate",
    );
    for (const e of messages(snap)) {
      assert.equal(e.parsed.message.n, Number(e.parsed.id), `message ${e.parsed.topic}#${e.parsed.id} carries its own body`);
    }
    assert.equal(snap.events.length, 11, "no lagged or other event: history covered the gap");
    // Each connection began with a start event (onmessage did not see it)
    // whose id is where it began: nothing, then the position before the restart.
    const at = (na, nb) => ({ lastEventId: `${a}:${na},${b}:${nb}`, data: JSON.stringify({ id: `${a}:${na},${b}:${nb}` }) });
    assert.deepEqual(snap.starts, [at(0, 0), at(3, 2)], "the start events of both connections");
    const cursor = Object.fromEntries(messages(snap).at(-1).lastEventId.split(",").map((p) => p.split(":")));
    assert.deepEqual(cursor, { [a]: "6", [b]: "5" }, "the last id is a cursor over both topics");

    // The dashboard: it showed the reconnect, is live again, and its tail
    // is just as complete.
    assert.equal(await sawReconnecting, true, "the dashboard status must show reconnecting while the server is away");
    await dash.locator('#tail-status[data-state="live"]').waitFor({ timeout: 10_000 });
    let rows;
    await waitFor(
      async () => (rows = (await tailRows(dash)).filter((r) => !r.kind)).length === 11,
      () => `11 events in the dashboard tail, it shows ${JSON.stringify(rows)}`,
    );
    const byTopic = {};
    for (const r of rows) (byTopic[r.topic] ??= []).push(Number(r.id));
    assert.deepEqual(byTopic, { [a]: range(1, 6), [b]: range(1, 5) }, "the dashboard tail is gap-free too");
    const kinds = (await tailRows(dash)).filter((r) => r.kind).map((r) => r.kind);
    assert.deepEqual(kinds, ["lost", "reconnected"], "the tail notes the lost connection and the reconnect");
  },
};
