// The dashboard's health view: the node's readiness, live charts drawn in
// inline SVG from the app's stats, and the lag episodes of its streams. A
// replay older than what the lag server keeps makes a lag episode.
import assert from "node:assert/strict";
import { createTopic, dashboardConnect, publish, screenshots, visibleText, waitFor } from "../lib.mjs";

export default {
  name: "dashboard_health",
  timeoutMs: 45_000,
  async run({ page, env, artifacts }) {
    const s = env.servers.health; // on the lag server: 3 messages kept per topic
    await createTopic(s, "orders");
    for (let i = 1; i <= 8; i++) await publish(s, "orders", JSON.stringify({ order: i }));

    await dashboardConnect(page, s);
    // A tail that replays from the start: older than the history, so lagged.
    await page.getByLabel("orders", { exact: true }).check();
    await page.getByLabel("Replay kept history").check();
    await page.getByRole("button", { name: "Tail selected" }).click();
    await page.locator('#tail-status[data-state="live"]').waitFor({ timeout: 10_000 });

    await page.getByRole("button", { name: "Health" }).click();
    await visibleText(page, "#health-node", /^This node is ready\.$/);
    await waitFor(async () => (await page.locator("#chart-connections .now").textContent()) === "1", "one live connection");
    for (const id of ["chart-connections", "chart-published", "chart-delivered", "chart-failed"]) {
      const pts = await page.locator(`#${id} svg polyline`).getAttribute("points");
      assert.ok(pts && pts.split(" ").length >= 89, `${id} has a point per 10 s over 15 minutes`);
    }
    await waitFor(async () => (await page.locator("#health-lag li").count()) >= 1, "a lag episode listed", { timeout: 10_000 });
    assert.match(await page.locator("#health-lag li").first().textContent(), /orders: missed \d+/);
    assert.ok(await page.locator("#health-slow-empty").isVisible());
    // The publishes show once their 10-second bucket is complete.
    await waitFor(
      async () => !/^0(\/s)?$/.test((await page.locator("#chart-published .max").textContent()).replace("peak ", "")),
      "the publishes in the chart",
      { timeout: 30_000 },
    );

    await screenshots(page, artifacts, "dashboard-health");
  },
};
