// The dashboard end to end, as a person uses it: paste the app id and key,
// see the topics with live subscriber counts, create a topic, tail two
// topics, publish from the form and see the message arrive, get inline
// errors for invalid JSON and for what the server refuses, delete a topic
// while tailing it. Screenshots (light and dark) are saved as artifacts.
import assert from "node:assert/strict";
import path from "node:path";
import { createTopic, dashboardConnect, publish, tailRows, topics, waitFor } from "../lib.mjs";

export default {
  name: "dashboard_flow",
  timeoutMs: 45_000,
  async run({ page, env, artifacts }) {
    const s = env.servers.dashboard; // an app of its own: the topic list is exactly ours
    await createTopic(s, "orders");
    await createTopic(s, "stock");
    await publish(s, "stock", '{"sku":"A-1","count":12}');

    // A wrong key is refused inline, with the server's error.
    await page.goto(s.url + "/");
    await page.getByLabel("App id").fill(s.app);
    await page.getByLabel("Key", { exact: true }).fill("hk_wrong_key");
    await page.getByLabel("Key", { exact: true }).press("Enter");
    await assertVisibleText(page, "#connect-error", /^Could not connect: .*\(unauthenticated\)\. Check the key\./);
    assert.equal(await page.getByLabel("Key", { exact: true }).getAttribute("aria-invalid"), "true");
    assert.ok(await page.locator("#workspace").isHidden());

    // Key → topics.
    const res = await dashboardConnect(page, s);
    const headers = res.headers();
    assert.match(headers["content-security-policy"] ?? "", /default-src 'none'/, "the page has a strict CSP");
    assert.equal(headers["cache-control"], "no-cache");
    assert.equal(await page.title(), "Herald dashboard");
    assert.ok(!page.url().includes(s.fullKey), "the key is never in the page's URL");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("herald.dashboard.key")), s.fullKey, "the key is kept in sessionStorage");
    assert.equal(await page.locator("#who-app").textContent(), s.app);
    const focused = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent);
    assert.equal(await focused(), "topics-h", "after connecting, the focus moves to the topics, not to the page's top");
    const rowNames = () => page.locator("#topic-rows tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.topic));
    assert.deepEqual(await rowNames(), ["orders", "stock"]);
    assert.equal(await page.locator('tr[data-topic="stock"] .last').textContent(), "1");

    // Every form control has a label; the tail is a live region.
    const unlabelled = await page.locator("input, select, textarea").evaluateAll((els) =>
      els.filter((e) => e.labels.length === 0 && !e.getAttribute("aria-label")).map((e) => e.outerHTML),
    );
    assert.deepEqual(unlabelled, [], "form controls without a label");
    assert.equal(await page.locator("#tail-log").getAttribute("role"), "log");
    assert.equal(await page.locator("#tail-log").getAttribute("aria-live"), "polite");

    // Create a topic from the form; a bad name is refused inline first.
    await page.getByLabel("New topic").fill("bad name!");
    await page.getByRole("button", { name: "Create" }).click();
    await assertVisibleText(page, "#create-error", /1–128 characters/);
    assert.equal(await page.getByLabel("New topic").getAttribute("aria-invalid"), "true");
    await page.getByLabel("New topic").fill("audit");
    await page.getByLabel("New topic").press("Enter");
    await page.locator('tr[data-topic="audit"]').waitFor({ timeout: 5_000 });
    assert.ok(await page.locator("#create-error").isHidden(), "the error clears once the name is good");

    // Tail orders and stock over one EventSource.
    await page.getByLabel("orders", { exact: true }).check();
    await page.getByLabel("stock", { exact: true }).check();
    await page.getByRole("button", { name: "Tail selected" }).click();
    await page.locator('#tail-status[data-state="live"]').waitFor({ timeout: 10_000 });
    assert.match(await page.locator("#tail-status").textContent(), /Live: orders, stock/);
    // The topic list is polled: its subscriber counts show the tail.
    await waitFor(
      async () => (await page.locator('tr[data-topic="orders"] .subs').textContent()) === "1",
      "the orders row to show 1 live subscriber",
    );

    // Publish from the form → the message appears in the tail.
    const sent = { order: 42, total: 12.5, note: 'first "dashboard" order ✓', lines: ["a", "b"] };
    await page.getByLabel("Topic", { exact: true }).selectOption("orders");
    await page.getByLabel("Message (JSON)").fill(JSON.stringify(sent, null, 2));
    await page.getByRole("button", { name: "Publish" }).click();
    await assertVisibleText(page, "#publish-result", /^Published #1 to orders at /);
    let rows;
    await waitFor(
      async () => (rows = await tailRows(page)).some((r) => r.topic === "orders" && r.id === "1"),
      () => `orders #1 in the tail, it shows ${JSON.stringify(rows)}`,
    );
    assert.deepStrictEqual(rows.find((r) => r.id === "1" && r.topic === "orders").message, sent);
    assert.equal(await focused(), "Publish", "the Publish button keeps the focus while and after it publishes");

    // Invalid JSON: an inline error, and nothing is sent.
    await page.getByLabel("Message (JSON)").fill('{"order": 43,}');
    await page.getByLabel("Message (JSON)").press("Control+Enter");
    await assertVisibleText(page, "#publish-error", /^Not valid JSON: /);
    assert.equal(await page.getByLabel("Message (JSON)").getAttribute("aria-invalid"), "true");
    assert.ok(
      (await page.getByLabel("Message (JSON)").getAttribute("aria-describedby")).includes("publish-error"),
      "the error is tied to the field for screen readers",
    );
    assert.equal((await topics(s)).find((t) => t.name === "orders").last_id, "1", "invalid JSON never reaches the server");

    // What the server refuses shows its error body inline.
    await page.getByLabel("Message (JSON)").fill(JSON.stringify("x".repeat(70 * 1024)));
    await page.getByRole("button", { name: "Publish" }).click();
    await assertVisibleText(page, "#publish-error", /message larger than the limit.*\(message_too_large, HTTP 413\)/);

    // Messages from elsewhere arrive too.
    await publish(s, "stock", '{"sku":"A-1","count":11,"reason":"order 42"}');
    await publish(s, "orders", '{"order":44,"total":99.9,"note":"published by the backend"}');
    await waitFor(async () => (await tailRows(page)).filter((r) => !r.kind).length === 3, "3 events in the tail");

    // Delete a tailed topic (two clicks): the tail says so and goes on
    // with the other topic.
    const del = page.getByRole("button", { name: "Delete topic stock" });
    await del.click();
    await page.getByRole("button", { name: "Confirm: delete topic stock and its history" }).click();
    await waitFor(
      async () => (rows = await tailRows(page)).some((r) => r.kind === "deleted"),
      () => `a topic_deleted notice in the tail, it shows ${JSON.stringify(rows)}`,
    );
    assert.match(rows.find((r) => r.kind === "deleted").text, /^Topic stock was deleted/);
    await waitFor(async () => (await rowNames()).join() === "audit,orders", "the stock row to go away");
    await page.locator('#tail-status[data-state="live"]').waitFor({ timeout: 10_000 });
    assert.match(await page.locator("#tail-status").textContent(), /Live: orders$/);

    await page.getByLabel("Message (JSON)").fill('{"order":45,"total":7,"note":"after the delete"}');
    await page.getByRole("button", { name: "Publish" }).click();
    await waitFor(async () => (await tailRows(page)).some((r) => r.topic === "orders" && r.id === "3"), "orders #3 in the tail");
    await page.getByLabel("Message (JSON)").fill('{"order": 46, "total": }');
    await page.getByRole("button", { name: "Publish" }).click();
    await assertVisibleText(page, "#publish-error", /^Not valid JSON: /);

    const dir = env.artifacts;
    for (const scheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme: scheme });
      const file = path.join(dir, scheme === "light" ? "dashboard.png" : "dashboard-dark.png");
      await page.screenshot({ path: file, fullPage: true });
      artifacts.push(file);
    }
    await page.emulateMedia({ colorScheme: null });

    // Forget the key: it leaves sessionStorage and the form comes back.
    await page.getByRole("button", { name: "Forget key" }).click();
    await page.locator("#connect").waitFor({ state: "visible" });
    assert.equal(await page.evaluate(() => sessionStorage.getItem("herald.dashboard.key")), null);
  },
};

async function assertVisibleText(page, selector, re) {
  const loc = page.locator(selector);
  await waitFor(
    async () => (await loc.isVisible()) && re.test(await loc.textContent()),
    async () => `${selector} to show ${re}, it shows ${JSON.stringify(await loc.textContent())} (visible: ${await loc.isVisible()})`,
  );
}
