// Follows one Herald stream with a third-party SSE client library and prints
// what it receives, one JSON object a line: {"id","data"} per message. Run by
// sseclients_test.go (go test ./e2e/thirdparty), which restarts the server
// under it: node sse.mjs <library> <url>.
import { createRequire } from "node:module";

const [lib, url] = process.argv.slice(2);
// Some libraries hand over the retry: and comment block that opens a stream
// as a message with no data: that is no message.
const out = (o) => { if (o.data !== "") process.stdout.write(JSON.stringify(o) + "\n"); };
// eventsource unrefs its reconnect timer: while it waits, nothing else would
// keep Node running. The test ends this process.
setInterval(() => {}, 1 << 30);
const require = createRequire(import.meta.url);

const clients = {
  // The WHATWG EventSource for Node.
  async eventsource() {
    const { EventSource } = await import("eventsource");
    const es = new EventSource(url);
    es.onmessage = (e) => out({ id: e.lastEventId, data: e.data });
  },
  async "extended-eventsource"() {
    const { EventSource } = await import("extended-eventsource");
    const es = new EventSource(url);
    es.onmessage = (e) => out({ id: e.lastEventId, data: e.data });
  },
  // Yaffle's polyfill records an id only from an event it dispatches, and
  // sends it as ?lastEventId= unless told the name Herald reads.
  async "event-source-polyfill"() {
    const { EventSourcePolyfill } = require("event-source-polyfill");
    const es = new EventSourcePolyfill(url, { lastEventIdQueryParameterName: "last_event_id" });
    es.onmessage = (e) => out({ id: e.lastEventId, data: e.data });
  },
  // fetch-event-source is written for browsers: it needs window and document.
  // It does not reconnect after a clean end of stream unless onclose throws.
  async "@microsoft/fetch-event-source"() {
    globalThis.window ??= globalThis;
    globalThis.document ??= { hidden: false, addEventListener() {}, removeEventListener() {} };
    const { fetchEventSource } = await import("@microsoft/fetch-event-source");
    await fetchEventSource(url, {
      openWhenHidden: true,
      onmessage: (e) => { if (e.event === "" || e.event === "message") out({ id: e.id, data: e.data }); },
      onclose: () => { throw new Error("stream ended: reconnect"); },
      onerror: () => undefined, // retry after the server's retry: delay
    });
  },
};

const run = clients[lib];
if (!run) {
  console.error(`unknown library ${lib}; known: ${Object.keys(clients).join(", ")}`);
  process.exit(2);
}
await run();
