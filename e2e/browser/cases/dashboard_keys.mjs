// The dashboard's keys view: the list (ids, scopes, last use, never a
// secret), a key created and shown once with a copy button that copies it,
// and a revoke that asks for a second click. The key revoked is then
// refused by the server.
import assert from "node:assert/strict";
import { api, appPath, dashboardConnect, screenshots, visibleText, waitFor } from "../lib.mjs";

export default {
  name: "dashboard_keys",
  timeoutMs: 45_000,
  async run({ page, context, env, artifacts }) {
    const s = env.servers.keys;
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: s.url });
    await dashboardConnect(page, s);
    await page.getByRole("button", { name: "Keys" }).click();
    const rows = () => page.locator("#key-rows tr").evaluateAll((trs) => trs.map((tr) => ({ id: tr.dataset.key, text: tr.textContent })));
    await waitFor(async () => (await rows()).length === 2, "the app's two keys listed");
    const own = s.fullKey.split("_")[1];
    const listed = await rows();
    assert.ok(listed.some((r) => r.id === own && r.text.includes("(this page)")), "the page's own key is marked");
    for (const r of listed) assert.ok(!r.text.includes(s.fullKey.split("_")[2]), "no secret is shown");

    // Create a subscribe-only key: shown once, copied by the button.
    await page.getByLabel("publish", { exact: true }).uncheck();
    await page.getByLabel("subscribe", { exact: true }).check();
    await page.getByRole("button", { name: "Create key" }).click();
    await page.locator("#key-created").waitFor({ state: "visible" });
    const created = await page.locator("#key-created-value").inputValue();
    assert.match(created, /^hk_[0-9a-f]+_[0-9a-f]+$/);
    await page.locator("#key-copy").click();
    await visibleText(page, "#key-copy", /^Copied$/);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), created, "the copy button copies the key");
    const newID = created.split("_")[1];
    await waitFor(async () => (await rows()).some((r) => r.id === newID && r.text.includes("subscribe")), "the new key listed");
    const works = await api(s, "GET", `${appPath(s)}/topics`, { key: created });
    assert.equal(works.status, 403, "a subscribe key is a valid key without the manage scope");

    // No scope ticked: refused inline.
    await page.getByLabel("subscribe", { exact: true }).uncheck();
    await page.getByRole("button", { name: "Create key" }).click();
    await visibleText(page, "#key-create-error", /Tick at least one scope/);

    await screenshots(page, artifacts, "dashboard-keys");

    // Revoke with a second click.
    const revoke = page.getByRole("button", { name: `Revoke key ${newID}` });
    await revoke.click();
    assert.ok(await page.locator(`tr[data-key="${newID}"]`).isVisible(), "one click does not revoke");
    await page.getByRole("button", { name: `Confirm: revoke key ${newID}` }).click();
    await waitFor(async () => !(await rows()).some((r) => r.id === newID), "the revoked key to leave the list");
    const refused = await api(s, "GET", `${appPath(s)}/topics`, { key: created });
    assert.equal(refused.status, 401, "the revoked key is refused");
  },
};
