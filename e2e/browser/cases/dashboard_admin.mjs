// The dashboard with the admin token: the apps with their connections and
// message counts, an app created (its keys shown once) and deleted with a
// second click, and an app opened.
import assert from "node:assert/strict";
import { api, appPath, screenshots, visibleText, waitFor } from "../lib.mjs";

export default {
  name: "dashboard_admin",
  timeoutMs: 45_000,
  async run({ page, env, artifacts }) {
    const s = env.servers.dashboard;
    await page.goto(s.url + "/");
    // No app id: the key is the admin token.
    await page.getByLabel("Key", { exact: true }).fill(env.admin);
    await page.getByLabel("Key", { exact: true }).press("Enter");
    await page.locator("#admin-view").waitFor({ state: "visible" });
    await waitFor(async () => (await page.locator(`#app-rows tr[data-app="${s.app}"]`).count()) === 1, "the apps listed");

    // Create an app: its keys are shown once.
    await page.getByLabel("New app").fill("on-call demo");
    await page.getByRole("button", { name: "Create app" }).click();
    await page.locator("#app-created").waitFor({ state: "visible" });
    const id = await page.locator("#app-created-id").textContent();
    const keys = await page.locator("#app-created-keys input").evaluateAll((is) => is.map((i) => i.value));
    assert.equal(keys.length, 2);
    const topic = await api({ url: s.url, app: id, fullKey: keys[0] }, "PUT", `${appPath({ app: id })}/topics/news`);
    assert.equal(topic.status, 201, "the key shown works");
    await api({ url: s.url, app: id, fullKey: keys[0] }, "POST", `${appPath({ app: id })}/topics/news/messages`, { body: "1" });
    const row = page.locator(`#app-rows tr[data-app="${id}"]`);
    await waitFor(async () => (await row.locator(".msgs").textContent()) === "1", "the new app's message count");
    assert.equal(await row.locator(".conns").textContent(), "0");

    await screenshots(page, artifacts, "dashboard-admin");

    // Delete it with a second click.
    await row.getByRole("button", { name: /^Delete app on-call demo/ }).click();
    assert.ok(await row.isVisible(), "one click does not delete");
    await row.getByRole("button", { name: /^Confirm: delete app on-call demo/ }).click();
    await waitFor(async () => (await row.count()) === 0, "the deleted app to leave the list");
    assert.equal((await api({ url: s.url, fullKey: env.admin }, "GET", `/v1/apps/${id}/topics`)).status, 404);

    // Open an app: its topics, with the admin token.
    await page.locator(`#app-rows tr[data-app="${s.app}"]`).getByRole("button", { name: /^Open app/ }).click();
    await page.locator("#workspace").waitFor({ state: "visible" });
    await visibleText(page, "#who-app", new RegExp(s.app));
    await page.getByRole("button", { name: "Apps" }).click();
    await page.locator("#admin-view").waitFor({ state: "visible" });
  },
};
