// Deleting a topic while a page listens: `event: topic_deleted` reaches
// both a one-topic stream and a multi-topic one; the multi-topic stream
// goes on with its other topics; the one-topic stream ends, the browser's
// reconnect is refused with 404, and EventSource stops for good.
import assert from "node:assert/strict";
import {
  createTopic, deleteTopic, messages, multi, openBlank, publish, record, streamPath, uniqueTopic, waitStream,
} from "../lib.mjs";

export default {
  name: "topic_deleted_event",
  async run({ page, env }) {
    const s = env.servers.main;
    const doomed = uniqueTopic("doomed");
    const kept = uniqueTopic("kept");
    await createTopic(s, doomed);
    await createTopic(s, kept);
    await openBlank(page, s);
    await record(page, "single", streamPath(s, { topics: [doomed] }));
    await record(page, "multi", streamPath(s, { topics: multi(doomed, kept) }));
    await waitStream(page, "single", (x) => x.opens === 1, "the one-topic stream to open");
    await waitStream(page, "multi", (x) => x.opens === 1, "the multi-topic stream to open");

    await deleteTopic(s, doomed);
    const deleted = (x) => x.events.find((e) => e.type === "topic_deleted");
    let snap = await waitStream(page, "multi", deleted, "topic_deleted on the multi-topic stream");
    assert.deepEqual(deleted(snap).parsed, { topic: doomed });

    await publish(s, kept, '"still here"');
    snap = await waitStream(page, "multi", (x) => messages(x).length === 1, "a message of the other topic");
    assert.equal(messages(snap)[0].parsed.topic, kept);
    assert.equal(messages(snap)[0].parsed.message, "still here");
    assert.equal(snap.opens, 1, "the multi-topic stream never dropped");

    snap = await waitStream(page, "single", deleted, "topic_deleted on the one-topic stream");
    assert.deepEqual(deleted(snap).parsed, { topic: doomed });
    // The server ends the stream; the browser retries after the server's
    // retry delay (2 s) and gets 404, which closes the EventSource.
    snap = await waitStream(page, "single", (x) => x.readyState === 2, "the one-topic EventSource to be CLOSED", {
      timeout: 8_000,
    });
    assert.equal(snap.opens, 1, "the reconnect to a deleted topic must not open");
    assert.equal(snap.errors.at(-1), 2, "the last error leaves readyState CLOSED");
  },
};
