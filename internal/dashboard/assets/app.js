// Herald dashboard. It talks to the /v1 API of the server that served it,
// with the app id and key the user pasted; they stay in this tab's
// sessionStorage and never go into the page's URL. Plain DOM, no framework,
// no build step; every element it uses is in index.html, and text goes in
// through textContent only, so no message can inject markup.

const STORE_APP = "herald.dashboard.app";
const STORE_KEY = "herald.dashboard.key";
const POLL_MS = 3000; // topic list and subscriber counts
const MAX_LOG = 500; // tail entries kept on the page
const DISARM_MS = 4000; // a delete button waits this long for its confirmation
const TOPIC_RE = /^[A-Za-z0-9._-]{1,128}$/;

const $ = (id) => document.getElementById(id);

const state = {
  app: "",
  key: "",
  admin: false, // connected with the admin token (the app may be one it opened)
  view: "workspace", // the view shown; see showView
  viewTimer: 0,
  attemptsOf: "", // the trigger whose attempts the webhooks view shows
  webhooksStale: false, // the webhooks error on show is a failed refresh's
  topics: new Map(), // name → {name, last_id, subscribers, created_at}, as the server last said
  selected: new Set(), // topics ticked for the tail
  pollTimer: 0,
  polling: false,
  tail: null, // the live EventSource and what it follows; see startTail
};

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the server with the key and returns the decoded JSON body, or
// throws an APIError carrying the server's {"error":{"code","message"}}.
async function api(method, path, body) {
  const init = { method, cache: "no-store", headers: { Authorization: "Bearer " + state.key } };
  if (body !== undefined) {
    init.body = body;
    init.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, "network", "the server did not answer (" + e.message + ")");
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below when the status is an error
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new APIError(res.status, err.code || "http_" + res.status, err.message || text || res.statusText);
  }
  return data;
}

const appPath = () => "/v1/apps/" + encodeURIComponent(state.app);
const topicPath = (t) => appPath() + "/topics/" + encodeURIComponent(t);

function el(tag, props = {}, ...children) {
  const n = document.createElement(tag);
  Object.assign(n, props);
  n.append(...children);
  return n;
}

function showError(id, message) {
  const p = $(id);
  p.textContent = message;
  p.hidden = !message;
}

function clockTime(d) {
  const t = d.toLocaleTimeString([], { hour12: false });
  return t + "." + String(d.getMilliseconds()).padStart(3, "0");
}

// ---- connect -------------------------------------------------------------

async function connect(app, key) {
  showError("connect-error", "");
  if (!app) return connectAdmin(key);
  state.app = app;
  state.key = key;
  let data;
  try {
    data = await api("GET", appPath() + "/topics");
  } catch (e) {
    state.app = state.key = "";
    if (e.status === 401 || e.status === 403 || e.status === 404) {
      // A key saved earlier in this tab that no longer works is forgotten.
      sessionStorage.removeItem(STORE_APP);
      sessionStorage.removeItem(STORE_KEY);
    }
    let hint = "";
    if (e.status === 401) hint = " Check the key.";
    else if (e.status === 403) hint = " Use a key with the manage scope, or one of this app's keys.";
    else if (e.status === 404) hint = " Check the app id.";
    showError("connect-error", "Could not connect: " + e.message + " (" + e.code + ")." + hint);
    $("app-key").setAttribute("aria-invalid", "true");
    return false;
  }
  sessionStorage.setItem(STORE_APP, app);
  sessionStorage.setItem(STORE_KEY, key);
  $("app-key").value = "";
  $("app-key").removeAttribute("aria-invalid");
  $("connect").hidden = true;
  $("workspace").hidden = false;
  $("who").hidden = false;
  $("forget").hidden = false;
  $("who-app").textContent = app;
  $("views").hidden = false;
  $("apps-tab").hidden = !state.admin;
  renderTopics(data.topics || []);
  state.pollTimer = setInterval(() => {
    if (!document.hidden) refreshTopics();
  }, POLL_MS);
  showView("workspace", false);
  // Move the focus past the form that just went away, for keyboard users.
  $("topics-h").focus();
  return true;
}

function forget() {
  stopTail("Not tailing. Tick topics, then Tail selected.");
  clearInterval(state.pollTimer);
  clearInterval(state.viewTimer);
  state.admin = false;
  state.attemptsOf = "";
  $("views").hidden = true;
  for (const v of VIEWS) $(v).hidden = true;
  $("key-created").hidden = true;
  $("key-created-value").value = "";
  $("app-created").hidden = true;
  $("app-created-keys").replaceChildren();
  sessionStorage.removeItem(STORE_APP);
  sessionStorage.removeItem(STORE_KEY);
  state.app = state.key = "";
  state.topics = new Map();
  state.selected.clear();
  $("topic-rows").replaceChildren();
  $("tail-log").replaceChildren();
  $("tail-empty").hidden = false;
  $("workspace").hidden = true;
  $("who").hidden = true;
  $("forget").hidden = true;
  $("connect").hidden = false;
  $("app-id").focus();
}

// ---- topics --------------------------------------------------------------

async function refreshTopics() {
  if (state.polling || !state.key) return;
  state.polling = true;
  try {
    const data = await api("GET", appPath() + "/topics");
    showError("topics-error", "");
    renderTopics(data.topics || []);
  } catch (e) {
    const hint = e.status === 401 ? " The key is no longer valid: Forget key, then connect again." : "";
    showError("topics-error", "Could not refresh topics: " + e.message + "." + hint);
  } finally {
    state.polling = false;
  }
}

// renderTopics updates the table in place, keyed by topic name, so that a
// refresh every few seconds never takes the focus or a tick away.
function renderTopics(list) {
  const rows = $("topic-rows");
  const names = new Set(list.map((t) => t.name));
  for (const tr of [...rows.children]) {
    if (!names.has(tr.dataset.topic)) {
      state.selected.delete(tr.dataset.topic);
      tr.remove();
    }
  }
  list.forEach((t, i) => {
    let tr = rows.querySelector('tr[data-topic="' + CSS.escape(t.name) + '"]');
    if (!tr) {
      tr = topicRow(t.name);
      rows.insertBefore(tr, rows.children[i] || null);
    }
    tr.querySelector(".last").textContent = t.last_id;
    const subs = tr.querySelector(".subs");
    subs.textContent = String(t.subscribers);
    subs.classList.toggle("subs-live", t.subscribers > 0);
  });
  state.topics = new Map(list.map((t) => [t.name, t]));
  $("topics-empty").hidden = list.length > 0;
  $("topics-updated").textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
  renderPublishTopics();
}

function topicRow(name) {
  const id = "pick-" + name;
  const box = el("input", { type: "checkbox", id, checked: state.selected.has(name) });
  box.addEventListener("change", () => {
    if (box.checked) state.selected.add(name);
    else state.selected.delete(name);
  });
  const del = el("button", { type: "button", className: "danger", textContent: "Delete" });
  del.setAttribute("aria-label", "Delete topic " + name);
  del.addEventListener("click", () => deleteTopic(name, del));
  const label = el("label", { htmlFor: id, textContent: name });
  const tr = el(
    "tr",
    {},
    el("td", { className: "pick" }, box),
    el("td", { className: "name" }, label),
    el("td", { className: "num last" }),
    el("td", { className: "num subs" }),
    el("td", {}, del),
  );
  tr.dataset.topic = name;
  return tr;
}

// deleteTopic asks for a second click before deleting: deleting ends every
// live stream on the topic and drops its history.
async function deleteTopic(name, button) {
  if (!button.classList.contains("armed")) {
    button.classList.add("armed");
    button.textContent = "Confirm delete";
    button.setAttribute("aria-label", "Confirm: delete topic " + name + " and its history");
    button.disarm = setTimeout(() => {
      button.classList.remove("armed");
      button.textContent = "Delete";
      button.setAttribute("aria-label", "Delete topic " + name);
    }, DISARM_MS);
    return;
  }
  clearTimeout(button.disarm);
  button.disabled = true;
  try {
    await api("DELETE", topicPath(name));
    showError("topics-error", "");
    // Its row, and the focused button in it, go away: keep the focus nearby.
    $("topics-h").focus();
  } catch (e) {
    showError("topics-error", "Could not delete " + name + ": " + e.message + " (" + e.code + ").");
    button.disabled = false;
  }
  await refreshTopics();
}

async function createTopic(ev) {
  ev.preventDefault();
  const input = $("create-name");
  const name = input.value.trim();
  showError("create-error", "");
  input.removeAttribute("aria-invalid");
  if (!TOPIC_RE.test(name)) {
    input.setAttribute("aria-invalid", "true");
    showError("create-error", "A topic name is 1–128 characters of A–Z a–z 0–9 . _ -");
    input.focus();
    return;
  }
  try {
    await api("PUT", topicPath(name));
    input.value = "";
  } catch (e) {
    input.setAttribute("aria-invalid", "true");
    showError("create-error", "The server refused it: " + e.message + " (" + e.code + ", HTTP " + e.status + ").");
    input.focus();
    return;
  }
  await refreshTopics();
}

// ---- publish -------------------------------------------------------------

function renderPublishTopics() {
  const select = $("publish-topic");
  const current = select.value;
  const names = [...state.topics.keys()];
  const same = select.options.length === names.length && names.every((n, i) => select.options[i].value === n);
  if (!same) {
    select.replaceChildren(...names.map((n) => el("option", { value: n, textContent: n })));
    if (names.includes(current)) select.value = current;
  }
  select.disabled = names.length === 0;
}

async function publish(ev) {
  ev.preventDefault();
  const body = $("publish-body");
  const topic = $("publish-topic").value;
  const text = body.value;
  showError("publish-error", "");
  $("publish-result").textContent = "";
  body.removeAttribute("aria-invalid");
  if (!topic) {
    showError("publish-error", "Create a topic first.");
    return;
  }
  try {
    JSON.parse(text);
  } catch (e) {
    body.setAttribute("aria-invalid", "true");
    showError("publish-error", "Not valid JSON: " + e.message);
    body.focus();
    return;
  }
  // Not button.disabled: that would take the focus away from a keyboard
  // user who pressed it.
  const form = $("publish-form");
  if (form.dataset.busy) return;
  form.dataset.busy = "1";
  form.setAttribute("aria-busy", "true");
  try {
    // The text goes as typed: the server validates and compacts it.
    const m = await api("POST", topicPath(topic) + "/messages", text);
    $("publish-result").textContent =
      "Published #" + m.id + " to " + m.topic + " at " + clockTime(new Date(m.published_at)) + ".";
  } catch (e) {
    body.setAttribute("aria-invalid", "true");
    showError("publish-error", "The server refused it: " + e.message + " (" + e.code + ", HTTP " + e.status + ").");
    body.focus();
  } finally {
    delete form.dataset.busy;
    form.removeAttribute("aria-busy");
  }
}

// ---- live tail -----------------------------------------------------------

function setStatus(stateName, text) {
  const s = $("tail-status");
  s.dataset.state = stateName;
  s.textContent = text;
}

// cursorPositions reads a stream id into {topic: id}. A multi-topic stream's
// ids are "a:12,b:7"; a one-topic stream's are the plain message id.
function cursorPositions(id, topics) {
  const pos = new Map();
  if (!id) return pos;
  if (!id.includes(":")) {
    if (topics.length === 1) pos.set(topics[0], id);
    return pos;
  }
  for (const part of id.split(",")) {
    const [name, n] = part.split(":");
    pos.set(name, n);
  }
  return pos;
}

// startTail opens ONE EventSource for every ticked topic (browsers allow
// only six HTTP/1.1 connections per origin). When a tail is already open,
// the topics it keeps resume from its position, with nothing missed.
function startTail() {
  const topics = [...state.selected].filter((t) => state.topics.has(t)).sort();
  if (topics.length === 0) {
    setStatus(state.tail ? $("tail-status").dataset.state : "idle", "Tick at least one topic to tail.");
    return;
  }
  const replay = $("tail-replay").checked;
  const old = state.tail;
  const known = old ? cursorPositions(old.lastId, old.topicList) : new Map();
  stopTail(null);
  const resume = [];
  for (const t of topics) {
    if (known.has(t)) resume.push(t + ":" + known.get(t));
    else if (replay) resume.push(t + ":0");
  }
  openTail(topics, resume.join(","));
}

function openTail(topics, lastEventID) {
  const q = new URLSearchParams();
  for (const t of topics) q.append("topic", t);
  if (lastEventID) q.set("last_event_id", lastEventID);
  // EventSource cannot send headers; the events endpoints take the key here.
  q.set("access_token", state.key);
  const es = new EventSource(appPath() + "/events?" + q);
  const tail = { es, topicList: topics, topics: new Set(topics), lastId: lastEventID, attempts: 0, lost: false };
  state.tail = tail;
  const names = () => [...tail.topics].join(", ");
  setStatus("connecting", "Connecting to " + names() + "…");
  $("tail-stop").disabled = false;

  es.onopen = () => {
    if (state.tail !== tail) return;
    if (tail.lost) {
      addNotice("reconnected", "Reconnected after " + tail.attempts + " attempt(s); resumed after id " + (tail.lastId || "(start)") + ".");
    }
    tail.lost = false;
    tail.attempts = 0;
    setStatus("live", "Live: " + names());
    refreshTopics(); // the subscriber counts now include this tab
  };
  // The stream's starting position: a reopen before the first message
  // resumes from it.
  es.addEventListener("start", (e) => {
    if (state.tail === tail) tail.lastId = e.lastEventId;
  });
  es.onmessage = (e) => {
    if (state.tail !== tail) return;
    tail.lastId = e.lastEventId;
    let d;
    try {
      d = JSON.parse(e.data);
    } catch {
      addNotice("error", "An event that is not JSON: " + e.data);
      return;
    }
    addEvent(d);
  };
  es.addEventListener("lagged", (e) => {
    if (state.tail !== tail) return;
    const d = JSON.parse(e.data);
    addNotice(
      "lagged",
      "Missed " + d.missed + " message" + (d.missed === 1 ? "" : "s") + " on " + d.topic +
        ": they are older than the server keeps, or this tab fell too far behind.",
    );
  });
  es.addEventListener("topic_deleted", (e) => {
    if (state.tail !== tail) return;
    const d = JSON.parse(e.data);
    tail.topics.delete(d.topic);
    state.selected.delete(d.topic);
    addNotice("deleted", "Topic " + d.topic + " was deleted; the tail no longer follows it.");
    refreshTopics();
    if (tail.topics.size === 0) {
      stopTail("Stopped: every tailed topic was deleted.", "closed");
      return;
    }
    // Reopen without the deleted topic, from the position reached: a later
    // reconnect naming it would be refused with 404 and end the whole tail.
    es.close();
    const rest = [...tail.topics];
    const pos = cursorPositions(tail.lastId, tail.topicList);
    openTail(rest, rest.filter((t) => pos.has(t)).map((t) => t + ":" + pos.get(t)).join(","));
  });
  es.onerror = () => {
    if (state.tail !== tail) return;
    if (es.readyState === EventSource.CONNECTING) {
      // The browser retries by itself and sends Last-Event-ID.
      tail.attempts++;
      if (!tail.lost) {
        tail.lost = true;
        addNotice("lost", "Connection lost; reconnecting. The server replays what was missed from its history.");
      }
      setStatus("reconnecting", "Reconnecting (attempt " + tail.attempts + ")…");
      return;
    }
    // CLOSED: the server answered with an error (401, 403, 404); the
    // browser does not retry that. Find out which and say so.
    $("tail-stop").disabled = true;
    setStatus("closed", "Stream closed by the server.");
    diagnose(tail);
  };
}

async function diagnose(tail) {
  let msg;
  try {
    const data = await api("GET", appPath() + "/topics");
    renderTopics(data.topics || []);
    const gone = [...tail.topics].filter((t) => !state.topics.has(t));
    msg = gone.length
      ? "Stream closed: no topic " + gone.join(", ") + " any more."
      : "Stream closed: the server refused it. Tail selected to try again.";
  } catch (e) {
    msg = e.status === 401
      ? "Stream closed: the key was refused (401). Forget key, then connect with a valid one."
      : "Stream closed: " + e.message + ".";
  }
  if (state.tail === tail) setStatus("closed", msg);
}

function stopTail(message, stateName = "idle") {
  const tail = state.tail;
  if (tail) tail.es.close();
  state.tail = null;
  $("tail-stop").disabled = true;
  if (message) setStatus(stateName, message);
}

function appendEntry(li) {
  const log = $("tail-log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  log.append(li);
  while (log.children.length > MAX_LOG) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
  $("tail-empty").hidden = true;
}

function addEvent(d) {
  const when = new Date(d.published_at);
  const li = el(
    "li",
    { className: "event" },
    el(
      "div",
      { className: "meta" },
      el("span", { className: "topic", textContent: d.topic }),
      el("span", { className: "mono", textContent: "#" + d.id }),
      el("time", { dateTime: d.published_at, textContent: clockTime(when) }),
    ),
    el("pre", { textContent: formatMessage(d.message) }),
  );
  li.dataset.topic = d.topic;
  li.dataset.id = d.id;
  appendEntry(li);
}

// formatMessage shows a short message on one line and indents a longer one.
function formatMessage(m) {
  if (m === undefined) return "";
  const compact = JSON.stringify(m);
  return compact.length <= 80 ? compact : JSON.stringify(m, null, 2);
}

function addNotice(kind, text) {
  const li = el("li", { className: "notice " + kind, textContent: text });
  li.dataset.kind = kind;
  appendEntry(li);
}

// ---- views -----------------------------------------------------------------

const VIEWS = ["workspace", "health-view", "webhooks-view", "keys-view", "admin-view"];
const VIEW_POLL_MS = 5000; // health and webhooks, while shown
const HEADINGS = { "health-view": "health-h", "webhooks-view": "webhooks-h", "keys-view": "keys-h", "admin-view": "admin-h", workspace: "topics-h" };

// showView shows one view and loads what it shows; the figures of the
// health and webhooks views are polled while they are shown.
function showView(view, focus) {
  state.view = view;
  for (const v of VIEWS) $(v).hidden = v !== view;
  for (const b of document.querySelectorAll(".view-tab")) b.setAttribute("aria-pressed", String(b.dataset.view === view));
  clearInterval(state.viewTimer);
  const load = { "health-view": refreshHealth, "webhooks-view": refreshWebhooks, "keys-view": refreshKeys, "admin-view": refreshApps }[view];
  if (load) {
    load();
    if (view === "health-view" || view === "webhooks-view" || view === "admin-view") {
      state.viewTimer = setInterval(() => {
        if (!document.hidden) load();
      }, VIEW_POLL_MS);
    }
  }
  if (focus) $(HEADINGS[view]).focus();
}

// actionsCell is a table cell holding a row's buttons on one line.
const actionsCell = (...buttons) => el("td", { className: "actions" }, el("div", { className: "buttons" }, ...buttons));

const shortTime = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "–");
const dateTime = (iso) => (iso ? new Date(iso).toLocaleString([], { hour12: false }) : "–");

// armButton makes a destructive button ask for a second click within
// DISARM_MS; it returns true when this click is the confirming one.
function armButton(button, confirmText, confirmLabel) {
  if (button.classList.contains("armed")) {
    clearTimeout(button.disarm);
    button.classList.remove("armed");
    return true;
  }
  const text = button.textContent;
  const label = button.getAttribute("aria-label");
  button.classList.add("armed");
  button.textContent = confirmText;
  button.setAttribute("aria-label", confirmLabel);
  button.disarm = setTimeout(() => {
    button.classList.remove("armed");
    button.textContent = text;
    if (label) button.setAttribute("aria-label", label);
  }, DISARM_MS);
  return false;
}

// replaceRows replaces a table's rows, unless one of its buttons is armed
// (armButton): the periodic refresh would put a fresh, unarmed button in
// its place, and the second click a user is about to make would find
// nothing to confirm. The rows wait for the next refresh instead.
function replaceRows(tbody, rows) {
  if (tbody.querySelector("button.armed")) return;
  tbody.replaceChildren(...rows);
}

// copyValue copies an input's value and says whether it worked; where the
// clipboard is refused, the text is selected for a manual copy.
async function copyValue(input, button) {
  try {
    await navigator.clipboard.writeText(input.value);
    button.textContent = "Copied";
  } catch {
    input.select();
    button.textContent = "Select and copy";
  }
  setTimeout(() => (button.textContent = "Copy"), DISARM_MS);
}

// ---- health ----------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

// drawChart draws values (oldest first) as a line over its area in the
// figure's inline SVG, scaled to the largest value, and shows the latest.
function drawChart(id, values, unit) {
  const fig = $(id);
  const n = values.length;
  const top = Math.max(...values, 0);
  const scale = top > 0 ? 36 / top : 0;
  const pts = values.map((v, i) => `${((i / Math.max(n - 1, 1)) * 100).toFixed(2)},${(38 - v * scale).toFixed(2)}`);
  let svg = fig.querySelector("svg");
  if (!svg) {
    svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 100 40");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const area = document.createElementNS(SVG, "polygon");
    area.setAttribute("class", "area");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", "line");
    svg.append(area, line);
    const axis = el("div", { className: "axis" }, el("span", { textContent: "15 min ago" }), el("span", { className: "max" }), el("span", { textContent: "now" }));
    fig.append(svg, axis);
  }
  svg.querySelector(".line").setAttribute("points", pts.join(" "));
  svg.querySelector(".area").setAttribute("points", "0,38 " + pts.join(" ") + " 100,38");
  const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
  const latest = values[n - 1] ?? 0;
  fig.querySelector(".now").textContent = fmt(latest) + unit;
  fig.querySelector(".max").textContent = "peak " + fmt(top) + unit;
  svg.setAttribute("aria-label", fig.querySelector("figcaption").firstChild.textContent.trim() + ": now " + fmt(latest) + ", peak " + fmt(top) + " over 15 minutes");
}

async function refreshHealth() {
  let s;
  try {
    s = await api("GET", appPath() + "/stats");
    showError("health-error", "");
  } catch (e) {
    showError("health-error", "Could not read the figures: " + e.message + " (" + e.code + ").");
    return;
  }
  const node = $("health-node");
  node.dataset.state = s.node.ready ? "live" : "closed";
  node.textContent = s.node.ready ? "This node is ready." : "This node is not ready: " + (s.node.reason || "unknown");
  const per = s.bucket_seconds || 10;
  // The last bucket is still filling: rates use the complete ones.
  const done = s.points.slice(0, -1);
  drawChart("chart-connections", s.points.map((p) => p.connections), "");
  drawChart("chart-published", done.map((p) => p.published / per), "/s");
  drawChart("chart-delivered", done.map((p) => p.delivered / per), "/s");
  drawChart("chart-failed", done.map((p) => p.failed / per), "/s");
  $("chart-connections").querySelector(".now").textContent = String(s.connections);
  const events = (list, ul, empty, text) => {
    $(ul).replaceChildren(...list.map((e) => el("li", {}, el("time", { dateTime: e.at, textContent: shortTime(e.at) }), " " + text(e))));
    $(empty).hidden = list.length > 0;
  };
  events(s.lag_episodes, "health-lag", "health-lag-empty", (e) => e.topic + ": missed " + e.missed);
  events(s.slow_disconnects, "health-slow", "health-slow-empty", () => "a stream that stopped reading was cut off");
  renderNodes(s.nodes || [], per);
  $("health-updated").textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
}

// sparkline is a small inline SVG of values, for a table cell.
function sparkline(values, label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 100 20");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const top = Math.max(...values, 0);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("class", "line");
  line.setAttribute(
    "points",
    values.map((v, i) => `${((i / Math.max(values.length - 1, 1)) * 100).toFixed(2)},${(19 - (top > 0 ? (v * 18) / top : 0)).toFixed(2)}`).join(" "),
  );
  svg.append(line);
  return svg;
}

// renderNodes shows each node of a cluster with the app's figures on it, as
// the nodes last reported them; a single node has no such list.
function renderNodes(nodes, per) {
  $("health-nodes").hidden = nodes.length === 0;
  $("node-rows").replaceChildren(
    ...nodes.map((n) => {
      const pts = n.stats ? n.stats.points : [];
      const lastDone = pts.length > 1 ? pts[pts.length - 2] : { published: 0, delivered: 0 };
      const rate = (v) => (v / per).toFixed(1) + "/s";
      const tr = el(
        "tr",
        {},
        el("td", { className: "mono nowrap", textContent: n.addr + (n.self ? " (this node)" : "") }),
        el("td", { className: n.ready ? "state-active" : "state-disabled", textContent: n.ready ? "ready" : "not ready: " + (n.reason || "?") }),
        el("td", { className: "num conns", textContent: String(n.stats ? n.stats.connections : 0) }),
        el("td", { className: "num pubs", textContent: rate(lastDone.published) }),
        el("td", { className: "num", textContent: rate(lastDone.delivered) }),
        el("td", {}, sparkline(pts.slice(0, -1).map((p) => p.published / per), "Publishes per second on " + n.addr + " over 15 minutes")),
        el("td", {}, el("time", { dateTime: n.reported_at, textContent: shortTime(n.reported_at) })),
      );
      tr.dataset.node = n.addr;
      return tr;
    }),
  );
}

// ---- webhooks ----------------------------------------------------------------

const triggerPath = (topic, id) => topicPath(topic) + "/triggers/" + encodeURIComponent(id);

async function refreshWebhooks() {
  const rows = [];
  let dead = [];
  try {
    for (const topic of state.topics.keys()) {
      const { triggers } = await api("GET", topicPath(topic) + "/triggers");
      for (const t of triggers) {
        const { attempts } = await api("GET", triggerPath(topic, t.id) + "/attempts");
        rows.push({ t, attempts });
      }
    }
    dead = (await api("GET", appPath() + "/dead-letters")).dead_letters;
  } catch (e) {
    showError("webhooks-error", "Could not read the webhooks: " + e.message + " (" + e.code + ").");
    state.webhooksStale = true;
    return;
  }
  // A refresh clears its own error, not what an action just reported.
  if (state.webhooksStale) showError("webhooks-error", "");
  state.webhooksStale = false;
  renderTriggers(rows);
  renderDead(dead);
  if (state.attemptsOf) {
    const r = rows.find((x) => x.t.id === state.attemptsOf);
    if (r) renderAttempts(r.t, r.attempts);
    else $("attempts").hidden = true;
  }
  $("webhooks-updated").textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
}

function renderTriggers(rows) {
  $("trigger-rows").replaceChildren(
    ...rows.map(({ t, attempts }) => {
      const real = attempts.filter((a) => !a.test);
      const ok = real.filter((a) => a.delivered).length;
      const rate = real.length ? Math.round((ok / real.length) * 100) + "%" : "–";
      const lastErr = attempts.find((a) => !a.delivered);
      const act = (text, label, fn) => {
        const b = el("button", { type: "button", className: "quiet", textContent: text });
        b.setAttribute("aria-label", label);
        b.addEventListener("click", () => fn(b));
        return b;
      };
      const toggle = t.state === "active"
        ? act("Disable", "Disable trigger " + t.id, () => setTriggerState(t, "disabled"))
        : act("Re-enable", "Re-enable trigger " + t.id, () => setTriggerState(t, "active"));
      const tr = el(
        "tr",
        {},
        el("td", { className: "mono nowrap", textContent: t.topic }),
        el("td", { className: "mono", textContent: t.url }),
        el("td", {}, el("span", { className: "state-" + t.state, textContent: t.state })),
        el("td", { className: "num rate", textContent: rate }),
        el("td", { className: "num", textContent: String(t.pending) }),
        el("td", { className: "num", textContent: String(t.dead) }),
        el("td", { className: "err", textContent: lastErr ? lastErr.error : "" }),
        el(
          "td",
          { className: "actions" },
          act("Attempts", "Attempts of trigger " + t.id, () => {
            state.attemptsOf = t.id;
            renderAttempts(t, attempts);
          }),
          act("Send test", "Send a test delivery to trigger " + t.id, (b) => testTrigger(t, b)),
          toggle,
        ),
      );
      tr.dataset.trigger = t.id;
      tr.classList.toggle("selected", state.attemptsOf === t.id);
      return tr;
    }),
  );
  $("triggers-empty").hidden = rows.length > 0;
}

function renderAttempts(t, attempts) {
  $("attempts").hidden = false;
  $("attempts-h").textContent = "Attempts of " + t.id + " (" + t.topic + "), newest first";
  $("attempt-rows").replaceChildren(
    ...attempts.map((a) =>
      el(
        "tr",
        {},
        el("td", {}, el("time", { dateTime: a.at, textContent: dateTime(a.at) })),
        el("td", { className: "mono", textContent: a.delivery_id + (a.test ? " (test)" : "") }),
        el("td", { className: a.delivered ? "state-active" : "state-disabled", textContent: a.status === null ? "no answer" : String(a.status) }),
        el("td", { className: "num", textContent: a.latency_ms.toFixed(1) + " ms" }),
        el("td", { textContent: a.next_retry_at ? dateTime(a.next_retry_at) : "–" }),
        el("td", { className: "err", textContent: a.error }),
      ),
    ),
  );
  for (const tr of $("trigger-rows").children) tr.classList.toggle("selected", tr.dataset.trigger === t.id);
}

function renderDead(dead) {
  $("dead-rows").replaceChildren(
    ...dead.map((d) => {
      const b = el("button", { type: "button", className: "quiet", textContent: "Redrive" });
      b.setAttribute("aria-label", "Redrive delivery " + d.id);
      b.addEventListener("click", () => redrive(d, b));
      const tr = el(
        "tr",
        {},
        el("td", { className: "mono", textContent: d.id }),
        el("td", { className: "mono", textContent: d.topic }),
        el("td", { className: "num", textContent: String(d.attempts) }),
        el("td", { className: "err", textContent: d.last_error }),
        el("td", {}, el("time", { dateTime: d.failed_at, textContent: dateTime(d.failed_at) })),
        actionsCell( b),
      );
      tr.dataset.delivery = d.id;
      return tr;
    }),
  );
  $("dead-empty").hidden = dead.length > 0;
}

async function setTriggerState(t, wanted) {
  showError("webhooks-error", "");
  try {
    await api("PATCH", triggerPath(t.topic, t.id), JSON.stringify({ state: wanted }));
    $("webhooks-result").textContent = "Trigger " + t.id + (wanted === "active" ? " re-enabled: its pending deliveries resume." : " disabled.");
  } catch (e) {
    showError("webhooks-error", "Could not change trigger " + t.id + ": " + e.message + " (" + e.code + ").");
  }
  await refreshWebhooks();
}

async function testTrigger(t, button) {
  showError("webhooks-error", "");
  button.disabled = true;
  $("webhooks-result").textContent = "Sending a test delivery to " + t.url + "…";
  try {
    const a = await api("POST", triggerPath(t.topic, t.id) + "/test");
    $("webhooks-result").textContent = a.delivered
      ? "Test delivered to " + t.url + ": HTTP " + a.status + " in " + a.latency_ms.toFixed(1) + " ms."
      : "Test failed for " + t.url + ": " + a.error + " (" + a.latency_ms.toFixed(1) + " ms).";
    state.attemptsOf = t.id;
  } catch (e) {
    showError("webhooks-error", "Could not send a test: " + e.message + " (" + e.code + ").");
  } finally {
    button.disabled = false;
  }
  await refreshWebhooks();
}

async function redrive(d, button) {
  showError("webhooks-error", "");
  $("webhooks-result").textContent = "";
  button.disabled = true;
  try {
    await api("POST", appPath() + "/dead-letters/" + encodeURIComponent(d.id) + "/redrive");
    $("webhooks-result").textContent = "Delivery " + d.id + " queued again.";
  } catch (e) {
    const hint = e.code === "trigger_disabled" ? " Re-enable its trigger first." : "";
    showError("webhooks-error", "Could not redrive " + d.id + ": " + e.message + hint);
    button.disabled = false;
  }
  await refreshWebhooks();
}

// ---- keys ------------------------------------------------------------------

// ownKeyID is the id of the key this page uses ("hk_<id>_<secret>").
const ownKeyID = () => (state.key.startsWith("hk_") ? state.key.split("_")[1] : "");

async function refreshKeys() {
  let keys;
  try {
    keys = (await api("GET", appPath() + "/keys")).keys;
  } catch (e) {
    showError("keys-error", "Could not list the keys: " + e.message + " (" + e.code + ").");
    return;
  }
  replaceRows(
    $("key-rows"),
    keys.map((k) => {
      const b = el("button", { type: "button", className: "danger", textContent: "Revoke" });
      b.setAttribute("aria-label", "Revoke key " + k.id);
      b.addEventListener("click", () => revokeKey(k, b));
      const mine = k.id === ownKeyID();
      const tr = el(
        "tr",
        {},
        el("td", { className: "mono", textContent: k.id + (mine ? " (this page)" : "") }),
        el("td", { textContent: k.scopes.join(", ") }),
        el("td", {}, el("time", { dateTime: k.created_at, textContent: dateTime(k.created_at) })),
        el("td", { textContent: k.last_used_at ? dateTime(k.last_used_at) : "never" }),
        actionsCell( b),
      );
      tr.dataset.key = k.id;
      return tr;
    }),
  );
}

async function createKey(ev) {
  ev.preventDefault();
  showError("key-create-error", "");
  showError("keys-error", "");
  const scopes = [...document.querySelectorAll('#key-create-form input[name="scope"]:checked')].map((c) => c.value);
  if (scopes.length === 0) {
    showError("key-create-error", "Tick at least one scope.");
    return;
  }
  try {
    const k = await api("POST", appPath() + "/keys", JSON.stringify({ scopes }));
    $("key-created-value").value = k.key;
    $("key-created").hidden = false;
    $("key-copy").focus();
  } catch (e) {
    showError("key-create-error", "The server refused it: " + e.message + " (" + e.code + ", HTTP " + e.status + ").");
  }
  await refreshKeys();
}

async function revokeKey(k, button) {
  const mine = k.id === ownKeyID();
  const warn = mine ? " (this page's key: it stops working)" : "";
  if (!armButton(button, "Confirm revoke", "Confirm: revoke key " + k.id + warn)) return;
  showError("keys-error", "");
  button.disabled = true;
  try {
    await api("DELETE", appPath() + "/keys/" + encodeURIComponent(k.id));
  } catch (e) {
    showError("keys-error", "Could not revoke " + k.id + ": " + e.message + " (" + e.code + ").");
    button.disabled = false;
    return;
  }
  if (mine) {
    forget();
    showError("connect-error", "You revoked the key this page used: connect with another one.");
    return;
  }
  $("keys-h").focus();
  await refreshKeys();
}

// ---- apps (admin) --------------------------------------------------------------

async function connectAdmin(key) {
  state.key = key;
  state.app = "";
  try {
    await api("GET", "/v1/apps");
  } catch (e) {
    state.key = "";
    if (e.status === 401) {
      sessionStorage.removeItem(STORE_APP);
      sessionStorage.removeItem(STORE_KEY);
    }
    showError("connect-error", "Could not connect as the admin: " + e.message + " (" + e.code + "). With no app id, paste the admin token.");
    $("app-key").setAttribute("aria-invalid", "true");
    return false;
  }
  state.admin = true;
  sessionStorage.setItem(STORE_APP, "");
  sessionStorage.setItem(STORE_KEY, key);
  $("app-key").value = "";
  $("app-key").removeAttribute("aria-invalid");
  $("connect").hidden = true;
  $("who").hidden = false;
  $("forget").hidden = false;
  $("who-app").textContent = "(admin)";
  $("views").hidden = true;
  showView("admin-view", true);
  return true;
}

// backToApps leaves the app an admin opened for the list of apps.
function backToApps() {
  stopTail("Not tailing. Tick topics, then Tail selected.");
  clearInterval(state.pollTimer);
  state.app = "";
  state.topics = new Map();
  state.selected.clear();
  $("topic-rows").replaceChildren();
  $("views").hidden = true;
  $("who-app").textContent = "(admin)";
  showView("admin-view", true);
}

async function refreshApps() {
  let apps;
  const figures = new Map();
  try {
    apps = (await api("GET", "/v1/apps")).apps;
    for (const a of apps) {
      const base = "/v1/apps/" + encodeURIComponent(a.id);
      const [st, tp] = await Promise.all([api("GET", base + "/stats"), api("GET", base + "/topics")]);
      const messages = tp.topics.reduce((n, t) => n + Number(t.last_id), 0);
      figures.set(a.id, { connections: st.connections, messages });
    }
    showError("apps-error", "");
  } catch (e) {
    showError("apps-error", "Could not list the apps: " + e.message + " (" + e.code + ").");
    return;
  }
  replaceRows(
    $("app-rows"),
    apps.map((a) => {
      const f = figures.get(a.id) || { connections: 0, messages: 0 };
      const open = el("button", { type: "button", className: "quiet", textContent: "Open" });
      open.setAttribute("aria-label", "Open app " + a.name + " (" + a.id + ")");
      open.addEventListener("click", () => connect(a.id, state.key));
      const del = el("button", { type: "button", className: "danger", textContent: "Delete" });
      del.setAttribute("aria-label", "Delete app " + a.name + " (" + a.id + ")");
      del.addEventListener("click", () => deleteApp(a, del));
      const tr = el(
        "tr",
        {},
        el("td", { className: "mono", textContent: a.id }),
        el("td", { textContent: a.name }),
        el("td", {}, el("time", { dateTime: a.created_at, textContent: dateTime(a.created_at) })),
        el("td", { className: "num conns", textContent: String(f.connections) }),
        el("td", { className: "num msgs", textContent: String(f.messages) }),
        actionsCell( open, del),
      );
      tr.dataset.app = a.id;
      return tr;
    }),
  );
  $("apps-empty").hidden = apps.length > 0;
  $("apps-updated").textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
}

async function createApp(ev) {
  ev.preventDefault();
  const input = $("app-create-name");
  const name = input.value.trim();
  showError("app-create-error", "");
  if (!name) {
    showError("app-create-error", "Name the app.");
    input.focus();
    return;
  }
  let app;
  try {
    app = await api("POST", "/v1/apps", JSON.stringify({ name }));
  } catch (e) {
    showError("app-create-error", "The server refused it: " + e.message + " (" + e.code + ", HTTP " + e.status + ").");
    return;
  }
  input.value = "";
  $("app-created-id").textContent = app.id;
  $("app-created-keys").replaceChildren(
    ...app.keys.map((k, i) => {
      const id = "app-created-key-" + i;
      const input = el("input", { id, readOnly: true, value: k.key, spellcheck: false });
      const copy = el("button", { type: "button", textContent: "Copy" });
      copy.setAttribute("aria-label", "Copy the " + k.scopes.join(", ") + " key");
      copy.addEventListener("click", () => copyValue(input, copy));
      return el("li", {}, el("label", { htmlFor: id, textContent: k.scopes.join(", ") }), el("div", { className: "copy-row" }, input, copy));
    }),
  );
  $("app-created").hidden = false;
  await refreshApps();
}

async function deleteApp(a, button) {
  if (!armButton(button, "Confirm delete", "Confirm: delete app " + a.name + " with its keys, topics and history")) return;
  button.disabled = true;
  try {
    await api("DELETE", "/v1/apps/" + encodeURIComponent(a.id));
  } catch (e) {
    showError("apps-error", "Could not delete " + a.id + ": " + e.message + " (" + e.code + ").");
    button.disabled = false;
    return;
  }
  $("admin-h").focus();
  await refreshApps();
}

// ---- wiring --------------------------------------------------------------

$("connect-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const app = $("app-id").value.trim();
  const key = $("app-key").value.trim();
  if (!key) {
    showError("connect-error", "A key is needed (or the admin token, with no app id).");
    $("app-key").focus();
    return;
  }
  connect(app, key);
});
$("forget").addEventListener("click", forget);
$("create-form").addEventListener("submit", createTopic);
$("publish-form").addEventListener("submit", publish);
$("publish-body").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    $("publish-form").requestSubmit();
  }
});
for (const b of document.querySelectorAll(".view-tab")) {
  b.addEventListener("click", () => {
    if (b.dataset.view === "admin-view") backToApps();
    else showView(b.dataset.view, true);
  });
}
$("webhooks-refresh").addEventListener("click", refreshWebhooks);
$("key-create-form").addEventListener("submit", createKey);
$("key-copy").addEventListener("click", () => copyValue($("key-created-value"), $("key-copy")));
$("app-create-form").addEventListener("submit", createApp);
$("tail-start").addEventListener("click", startTail);
$("tail-stop").addEventListener("click", () => stopTail("Stopped."));
$("tail-clear").addEventListener("click", () => {
  $("tail-log").replaceChildren();
  $("tail-empty").hidden = false;
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshTopics();
});

// A reload of the tab keeps the session; a new tab asks again.
const savedApp = sessionStorage.getItem(STORE_APP) ?? "";
const savedKey = sessionStorage.getItem(STORE_KEY);
if (savedKey) {
  $("app-id").value = savedApp;
  connect(savedApp, savedKey);
} else {
  $("app-id").focus();
}
