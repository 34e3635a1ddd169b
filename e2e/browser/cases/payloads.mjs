// onmessage gets every message deep-equal to what was published, whatever
// characters it holds: the server's framing must not let a newline, a
// Unicode line separator or an SSE-looking string break an event.
import assert from "node:assert/strict";
import { createTopic, messages, openBlank, publish, record, streamPath, uniqueTopic, waitStream } from "../lib.mjs";

const LS = "\u2028";
const PS = "\u2029";

// [label, JSON text exactly as published]
const payloads = [
  ["newlines in a string", '{"text":"line one\\nline two\\n\\nline four\\n"}'],
  ["CR, LF and CRLF in a string", '{"crlf":"a\\r\\nb\\rc\\n"}'],
  ["newlines between tokens", '[1,\n  2,\r\n  3\r]'],
  ["raw U+2028 and U+2029", `{"raw":"a${LS}b${PS}c","${LS}key":"${PS}"}`],
  ["escaped U+2028 and U+2029", '{"escaped":"\\u2028 and \\u2029"}'],
  ["emoji and scripts", '{"emoji":"😀🎉 👩‍👩‍👧 🇫🇷 ünïcödé 中文 עברית","surrogates":"\\ud83d\\ude00"}'],
  ["quotes and backslashes", String.raw`{"q":"she said \"hi\"","path":"C:\\dir\\file","mix":"\\\"\\n\\\\"}`],
  ["SSE lookalike", '"data: fake\\n\\nid: 999\\nevent: lagged\\n\\nretry: 1\\n\\n"'],
  ["newline in a key", '{"key\\nwith newline":{"nested":["a\\n","\\r",""]}}'],
  ["control characters", '{"tab":"a\\tb","nul":"a\\u0000b","bell":"\\u0007","del":"\u007f"}'],
  ["deep nesting", '[[[[[[[[[["deep",{"x":[null]}]]]]]]]]]]'],
  ["scalar null", "null"],
  ["scalar true", "true"],
  ["number", "-12.5e3"],
  ["empty string", '""'],
  ["string of one newline", '"\\n"'],
  ["many lines", JSON.stringify({ lines: Array.from({ length: 200 }, (_, i) => `line ${i}\n`).join("") })],
];

export default {
  name: "onmessage_payloads",
  async run({ page, env }) {
    const s = env.servers.main;
    const topic = uniqueTopic("payloads");
    await createTopic(s, topic);
    await openBlank(page, s);
    await record(page, "p", streamPath(s, { topics: [topic] }));
    await waitStream(page, "p", (x) => x.opens === 1, "the stream to open");

    for (const [, text] of payloads) await publish(s, topic, text);
    const snap = await waitStream(
      page,
      "p",
      (x) => messages(x).length === payloads.length,
      `${payloads.length} messages`,
    );

    assert.deepEqual(
      snap.events.map((e) => e.type),
      payloads.map(() => "message"),
      "every event is a plain message (no event: line), so onmessage fires for each",
    );
    payloads.forEach(([label, text], i) => {
      const e = snap.events[i];
      assert.ok(e.parsed, `payload ${i} (${label}): e.data is not JSON: ${JSON.stringify(e.data)}`);
      assert.equal(e.parsed.id, String(i + 1), `payload ${i} (${label}): id`);
      assert.equal(e.lastEventId, e.parsed.id, `payload ${i} (${label}): e.lastEventId is the message id`);
      assert.equal(e.parsed.topic, topic, `payload ${i} (${label}): topic`);
      assert.deepStrictEqual(
        e.parsed.message,
        JSON.parse(text),
        `payload ${i} (${label}): JSON.parse(e.data).message differs from what was published`,
      );
    });
  },
};
