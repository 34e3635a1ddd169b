// The browser cases, in the order they run. To add one: write a module in
// this folder whose default export is {name, run({page, context, env,
// artifacts}), timeoutMs?}, and list it here. Each case gets a fresh page
// (more with context.newPage()); they are all closed after it. Cases share
// the servers in env.servers, so each uses topics of its own (uniqueTopic).
import payloads from "./payloads.mjs";
import lagged from "./lagged.mjs";
import topicDeleted from "./topic_deleted.mjs";
import reconnect from "./reconnect.mjs";
import refused from "./refused.mjs";
import crossOrigin from "./cross_origin.mjs";
import expiredToken from "./expired_token.mjs";
import dashboard from "./dashboard.mjs";
import dashboardHealth from "./dashboard_health.mjs";
import dashboardWebhooks from "./dashboard_webhooks.mjs";
import dashboardKeys from "./dashboard_keys.mjs";
import dashboardAdmin from "./dashboard_admin.mjs";
import dashboardCluster from "./dashboard_cluster.mjs";

export default [payloads, lagged, topicDeleted, reconnect, refused, crossOrigin, expiredToken, dashboard, dashboardHealth, dashboardWebhooks, dashboardKeys, dashboardAdmin, dashboardCluster];
