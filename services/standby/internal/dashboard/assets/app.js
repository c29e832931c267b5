// mgrplane dashboard: renders each "state" event of the stream at ./events.
// Plain DOM, textContent only (no HTML from the server).
"use strict";

let view = null;      // the newest view
let receivedAt = 0;   // performance.now() when it arrived
let source = null;

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function duration(s) {
  if (s < 0) s = 0;
  if (s < 10) return s.toFixed(1) + " s";
  if (s < 60) return Math.round(s) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s % 60) + " s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + " h " + (m % 60) + " min";
  return Math.floor(h / 24) + " d " + (h % 24) + " h";
}

function when(iso) {
  const t = new Date(iso);
  if (isNaN(t) || t.getFullYear() < 2000) return "–";
  return t.toLocaleString();
}

// elapsed is the seconds since the view arrived.
function elapsed() {
  return (performance.now() - receivedAt) / 1000;
}

function beaconCell(td, age) {
  td.classList.add("age");
  if (age === null || age === undefined) {
    td.textContent = "unknown";
    td.classList.remove("ok", "warn", "bad");
    return;
  }
  const a = age + elapsed();
  td.textContent = duration(a) + " ago";
  td.classList.toggle("ok", a < 3);
  td.classList.toggle("warn", a >= 3 && a < 6);
  td.classList.toggle("bad", a >= 6);
}

function fillRows(tbody, rows, make) {
  tbody.replaceChildren(...rows.map(make));
}

function render(v) {
  const prevEpoch = view ? view.epoch : null;
  view = v;
  receivedAt = performance.now();
  document.body.dataset.epoch = v.epoch;

  $("epoch").textContent = v.epoch;
  $("served-by").textContent = v.served_by.name + " (gid " + v.served_by.gid + ")";
  if (prevEpoch !== null && prevEpoch !== v.epoch) {
    $("epoch").classList.remove("flash");
    void $("epoch").offsetWidth;
    $("epoch").classList.add("flash");
  }

  const banner = [];
  if (v.down) banner.push("The cluster is down: no active may be chosen (mgrctl unset down).");
  if (v.monitor_error) banner.push("The monitors did not answer: " + v.monitor_error);
  $("banner").hidden = banner.length === 0;
  $("banner").textContent = banner.join(" ");

  const a = v.active;
  $("active").hidden = !a;
  $("active-none").hidden = !!a;
  if (a) {
    $("active-name").textContent = a.name;
    $("active-gid").textContent = a.gid;
    const st = $("active-state");
    if (a.failing) { st.textContent = "told to stop"; st.className = "pill bad"; }
    else if (a.available) { st.textContent = "available"; st.className = "pill ok"; }
    else { st.textContent = "activating"; st.className = "pill warn"; }
    $("active-addrs").textContent = a.addrs.length ? a.addrs.join(", ") : "–";
    $("active-epoch").textContent = a.active_epoch;
    $("active-placement").textContent = a.priority + " / " + (a.zone || "–");
  }

  $("standby-count").textContent = v.standbys.length;
  $("standbys-none").hidden = v.standbys.length > 0;
  fillRows($("standbys"), v.standbys, (s) => {
    const tr = el("tr");
    tr.dataset.name = s.name;
    tr.append(el("td", s.name), el("td", s.gid), el("td", s.priority), el("td", s.zone || "–"));
    const age = el("td");
    age.dataset.age = "standby";
    tr.append(age);
    return tr;
  });

  fillRows($("modules"), v.modules, (m) => {
    const tr = el("tr");
    tr.dataset.name = m.name;
    const cls = m.state === "disabled" ? "pill" : (m.can_run ? "pill ok" : "pill bad");
    const state = el("td");
    state.append(el("span", m.state, cls));
    tr.append(el("td", m.name), state,
      el("td", m.can_run ? (m.reported ? "yes" : "not reported") : "no: " + m.error, m.can_run ? "" : "reason"));
    return tr;
  });

  $("services-none").hidden = v.services.length > 0;
  fillRows($("services"), v.services, (s) => {
    const tr = el("tr");
    const link = el("a", s.url);
    link.href = s.url;
    const td = el("td");
    td.append(link);
    tr.append(el("td", s.module), td);
    return tr;
  });

  $("failovers-none").hidden = v.failovers.length > 0;
  fillRows($("failovers"), v.failovers, (f) => {
    const tr = el("tr");
    tr.append(el("td", f.epoch), el("td", when(f.time)), el("td", f.from || "–"), el("td", f.to || "none"),
      el("td", f.reason || f.cause, "reason"));
    return tr;
  });

  $("cause").textContent = v.cause;
  $("reason").textContent = v.reason || "";
  $("modified").textContent = when(v.modified);
  $("fsid").textContent = v.fsid;
  tick();
}

// tick updates what ages with time alone.
function tick() {
  if (!view) return;
  const a = view.active;
  if (a) {
    beaconCell($("active-beacon"), a.beacon_age);
    const since = new Date(a.since);
    $("active-since").textContent = when(a.since) + " (" + duration((Date.now() - since) / 1000) + ")";
  }
  const rows = $("standbys").children;
  view.standbys.forEach((s, i) => {
    if (rows[i]) beaconCell(rows[i].lastElementChild, s.beacon_age);
  });
}

function setLink(state, text) {
  const l = $("link");
  l.className = "link " + state;
  l.textContent = text;
}

// openTimeout: a stream that has not opened by then (a request lost on the
// way, a proxy holding it) is dropped and made again.
const openTimeout = 5000;

function connect() {
  const s = new EventSource("events");
  source = s;
  setTimeout(() => {
    if (source === s && s.readyState === EventSource.CONNECTING) {
      setLink("connecting", "reconnecting…");
      s.close();
      connect();
    }
  }, openTimeout);
  source.addEventListener("open", () => setLink("live", "live"));
  source.addEventListener("state", (e) => {
    setLink("live", "live");
    render(JSON.parse(e.data));
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (this manager is no longer active, or the module was
      // disabled): try again later; the browser gave up by itself.
      setLink("lost", "disconnected; retrying");
      source.close();
      setTimeout(connect, 2000);
    } else {
      setLink("connecting", "reconnecting…");
    }
  });
}

connect();
setInterval(tick, 1000);
