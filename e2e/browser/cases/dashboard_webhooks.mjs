// The dashboard's webhooks view against a real receiver: triggers with
// their state, success rate and last error; a test sent from the page; the
// attempts of a trigger; a trigger a 410 disabled, re-enabled from the page,
// and its dead letter redriven and delivered.
import assert from "node:assert/strict";
import { api, appPath, control, createTopic, dashboardConnect, publish, screenshots, visibleText, waitFor } from "../lib.mjs";

async function trigger(s, topic, url) {
  const r = await api(s, "POST", `${appPath(s)}/topics/${topic}/triggers`, { body: JSON.stringify({ url }) });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

export default {
  name: "dashboard_webhooks",
  timeoutMs: 60_000,
  async run({ page, env, artifacts }) {
    const s = env.servers.webhooks;
    await createTopic(s, "orders");
    await createTopic(s, "billing");
    const ok = await trigger(s, "orders", env.receiver + "/ok");
    const failing = await trigger(s, "orders", env.receiver + "/fail");
    const flaky = await trigger(s, "billing", env.receiver + "/flaky");
    await publish(s, "orders", '{"order":1}');
    await publish(s, "billing", '{"invoice":7}');
    // The 410 kills the billing delivery and disables its trigger.
    await waitFor(async () => (await api(s, "GET", `${appPath(s)}/dead-letters`)).body.dead_letters.length === 1, "a dead letter");

    await dashboardConnect(page, s);
    await page.getByRole("button", { name: "Webhooks" }).click();
    const row = (id) => page.locator(`#trigger-rows tr[data-trigger="${id}"]`);
    await waitFor(async () => (await page.locator("#trigger-rows tr").count()) === 3, "three triggers listed");
    await waitFor(async () => (await row(ok.id).locator(".rate").textContent()) === "100%", "the ok trigger at 100%");
    await waitFor(async () => (await row(failing.id).locator(".rate").textContent()) === "0%", "the failing trigger at 0%");
    assert.match(await row(failing.id).locator(".err").textContent(), /HTTP 500 .*database down/);
    assert.equal(await row(flaky.id).locator("td:nth-child(3)").textContent(), "disabled");
    assert.match(await row(flaky.id).locator(".err").textContent(), /410/);

    // Send a test to the ok trigger: the outcome shows, and its attempts.
    await page.getByRole("button", { name: `Send a test delivery to trigger ${ok.id}` }).click();
    await visibleText(page, "#webhooks-result", /^Test delivered to .*\/ok: HTTP 204 in /);
    await page.locator("#attempts").waitFor({ state: "visible" });
    await waitFor(async () => /\(test\)/.test(await page.locator("#attempt-rows").textContent()), "the test in the attempts");
    await page.getByRole("button", { name: `Attempts of trigger ${failing.id}` }).click();
    await visibleText(page, "#attempts-h", new RegExp(`Attempts of ${failing.id}`));
    assert.match(await page.locator("#attempt-rows tr").first().textContent(), /500/);

    await screenshots(page, artifacts, "dashboard-webhooks");

    // Redrive refused while the trigger is disabled; re-enable, heal the
    // receiver, redrive: delivered.
    const dead = page.locator("#dead-rows tr").first();
    const deadID = await dead.getAttribute("data-delivery");
    await dead.getByRole("button", { name: `Redrive delivery ${deadID}` }).click();
    await visibleText(page, "#webhooks-error", /Re-enable its trigger first/);
    await page.getByRole("button", { name: `Re-enable trigger ${flaky.id}` }).click();
    await visibleText(page, "#webhooks-result", /re-enabled/);
    await waitFor(async () => (await row(flaky.id).locator("td:nth-child(3)").textContent()) === "active", "the trigger active again");
    await control("/heal");
    await page.getByRole("button", { name: `Redrive delivery ${deadID}` }).click();
    await visibleText(page, "#webhooks-result", new RegExp(`Delivery ${deadID} queued again`));
    await waitFor(
      async () => {
        const r = await api(s, "GET", `${appPath(s)}/topics/billing/triggers`);
        return r.body.triggers[0].delivered === 1;
      },
      "the redriven delivery delivered",
    );
    await page.getByRole("button", { name: "Refresh" }).click();
    await waitFor(async () => (await page.locator("#dead-rows tr").count()) === 0, "the dead letter gone from the list");
  },
};
