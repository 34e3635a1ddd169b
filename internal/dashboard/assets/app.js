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
  renderTopics(data.topics || []);
  state.pollTimer = setInterval(() => {
    if (!document.hidden) refreshTopics();
  }, POLL_MS);
  // Move the focus past the form that just went away, for keyboard users.
  $("topics-h").focus();
  return true;
}

function forget() {
  stopTail("Not tailing. Tick topics, then Tail selected.");
  clearInterval(state.pollTimer);
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

// ---- wiring --------------------------------------------------------------

$("connect-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const app = $("app-id").value.trim();
  const key = $("app-key").value.trim();
  if (!app || !key) {
    showError("connect-error", "Both the app id and a key are needed.");
    (app ? $("app-key") : $("app-id")).focus();
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
const savedApp = sessionStorage.getItem(STORE_APP);
const savedKey = sessionStorage.getItem(STORE_KEY);
if (savedApp && savedKey) {
  $("app-id").value = savedApp;
  connect(savedApp, savedKey);
} else {
  $("app-id").focus();
}
