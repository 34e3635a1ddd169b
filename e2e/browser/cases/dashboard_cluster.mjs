// The dashboard's health view on a cluster of two nodes on one Postgres:
// every node is listed with its readiness and the app's figures on it, as
// the nodes report them through the database every 10 seconds. Messages
// published through the second node show on its row, seen from the first.
import assert from "node:assert/strict";
import { dashboardConnect, publish, screenshots, waitFor } from "../lib.mjs";

export default {
  name: "dashboard_cluster",
  timeoutMs: 60_000,
  async run({ page, env, artifacts }) {
    const [one, two] = [env.servers.cluster, env.servers.cluster2];
    for (let i = 0; i < 5; i++) await publish(two, "orders", JSON.stringify({ order: i }));

    await dashboardConnect(page, one);
    await page.getByRole("button", { name: "Health" }).click();
    await page.locator("#health-nodes").waitFor({ state: "visible", timeout: 20_000 });
    const addr = (s) => new URL(s.url).host;
    const rows = page.locator("#node-rows tr");
    await waitFor(async () => (await rows.count()) === 2, "both nodes listed", { timeout: 25_000 });
    const self = page.locator(`#node-rows tr[data-node="${addr(one)}"]`);
    const other = page.locator(`#node-rows tr[data-node="${addr(two)}"]`);
    assert.match(await self.textContent(), /\(this node\)/);
    assert.match(await other.textContent(), /ready/);
    // The second node's publishes show once a complete bucket was reported.
    await waitFor(async () => (await other.locator(".pubs").textContent()) !== "0.0/s", "node two's publishes", { timeout: 35_000 });
    assert.equal(await self.locator(".pubs").textContent(), "0.0/s", "nothing was published through node one");

    await screenshots(page, artifacts, "dashboard-cluster");
  },
};
