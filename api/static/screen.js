/* The community map screen: markers coloured by the most urgent state, open alarms with running
   timers, KPIs, chime, system banner, resident card, one-click response. Live through SSE. */
"use strict";

(async () => {
  const config = await SW.init();
  const t = SW.t;
  // maxZoom: the marker clusters need one even when no tile layer (base map "none") gives it
  const map = L.map("map", {zoomControl: true, attributionControl: true, maxZoom: 19});
  const datum = config.map && config.map.kind === "tiles" ? config.map.tile_datum : "wgs84";
  if (config.map && config.map.kind === "tiles" && config.map.tile_url) {
    L.tileLayer(config.map.tile_url, {attribution: config.map.tile_attribution || "", maxZoom: 19}).addTo(map);
  } else if (config.map && config.map.kind === "image") {
    L.imageOverlay(config.map.image_url, [config.map.image_south_west, config.map.image_north_east]).addTo(map);
  }
  let layer = null;
  const markers = new Map();
  let state = null, role = null, fitted = false, knownAlarms = null, blindNow = [];
  // The chime is on unless someone turned it off on this screen (remembered across reloads: a wall
  // screen that restarts after a power cut must not come back silent). A kiosk browser started with
  // --autoplay-policy=no-user-gesture-required plays it without a click (docs/screens.md).
  let soundOn = localStorage.getItem("sw_sound") !== "off";
  let audio = null;
  const chime = document.getElementById("chime");
  const SPEAKER = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path fill="currentColor" ' +
    'd="M3 9h4l5-4v14l-5-4H3z"/>';
  const WAVES = '<path d="M15.5 8.5a5 5 0 0 1 0 7M18 6a8.5 8.5 0 0 1 0 12" fill="none" stroke="currentColor" ' +
    'stroke-width="2" stroke-linecap="round"/></svg>';
  const MUTED = '<path d="M16 9l6 6M22 9l-6 6" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round"/></svg>';
  function audioContext() {
    if (!audio) {
      try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { audio = null; }
    }
    return audio;
  }
  function paintChime() {
    const ctx = soundOn ? audioContext() : null;
    const blocked = soundOn && (!ctx || ctx.state !== "running");
    chime.innerHTML = (soundOn ? SPEAKER + WAVES : SPEAKER + MUTED) +
      `<span>${soundOn ? (blocked ? t("sound_blocked") : t("sound_on")) : t("sound_off")}</span>`;
    chime.dataset.sound = soundOn ? (blocked ? "blocked" : "on") : "off";
    chime.setAttribute("aria-pressed", soundOn ? "true" : "false");
  }
  chime.addEventListener("click", async () => {
    const ctx = audioContext();
    if (soundOn && ctx && ctx.state !== "running") {
      await ctx.resume().catch(() => {});  // the click is the gesture the browser waited for
    } else {
      soundOn = !soundOn;
      localStorage.setItem("sw_sound", soundOn ? "on" : "off");
      if (soundOn && ctx) await ctx.resume().catch(() => {});
    }
    paintChime();
    if (soundOn) beep();
  });
  paintChime();
  if (audio) audio.onstatechange = paintChime;

  function beep() {
    const ctx = audioContext();
    if (!ctx || ctx.state !== "running") return;
    document.body.dataset.chimes = String(Number(document.body.dataset.chimes || 0) + 1);
    try {
      [0, 0.35].forEach((delay, i) => {
        const osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.frequency.value = i ? 660 : 880; osc.connect(gain); gain.connect(ctx.destination);
        gain.gain.setValueAtTime(0.3, ctx.currentTime + delay);
        gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + delay + 0.3);
        osc.start(ctx.currentTime + delay); osc.stop(ctx.currentTime + delay + 0.3);
      });
    } catch (e) { /* no audio device */ }
  }

  function position(m) {
    return datum === "gcj02" ? SW.toGcj02(m.latitude, m.longitude) : [m.latitude, m.longitude];
  }
  function icon(m) {
    const cls = ["marker", m.colour, m.flashing ? "flashing" : "", m.away ? "away" : ""].join(" ");
    return L.divIcon({className: "", iconSize: [22, 22],
      html: `<div class="${cls}" data-resident="${m.id}" data-colour="${m.colour}" title="${SW.esc(m.name)}">` +
            `${m.phone ? t("phone_mark") : ""}</div>`});
  }
  // Many markers (a district): clustered with chunked loading, each a circle on one canvas; a cluster takes
  // the colour of its most urgent resident. A few: one element per marker (the flashing icon).
  const BIG = 2000;
  const RANK = {red: 0, amber: 1, blue: 2, grey: 3, green: 4};
  const FILL = {red: "#e5484d", amber: "#f5a524", blue: "#3e8ef7", grey: "#8b949e", green: "#2da44e"};
  let big = false, renderer = null, flashOn = false;
  function clusterIcon(cluster) {
    let worst = "green";
    for (const child of cluster.getAllChildMarkers()) {
      if (RANK[child.options.colour] < RANK[worst]) worst = child.options.colour;
    }
    return L.divIcon({className: "", iconSize: [34, 34], html: `<div class="cluster ${worst}" data-colour="${worst}">` +
      `${cluster.getChildCount()}</div>`});
  }
  function makeMarker(m) {
    if (!big) return L.marker(position(m), {icon: icon(m), title: m.name});
    return L.circleMarker(position(m), {renderer, radius: 6, weight: 1, color: "#fff", fillOpacity: 0.95,
      fillColor: FILL[m.colour] || FILL.grey, colour: m.colour});
  }
  function restyle(entry, m) {  // true: its cluster's colour must be looked at again
    if (!big) { entry.marker.setIcon(icon(m)); return false; }
    entry.marker.options.colour = m.colour;
    entry.marker.setStyle({fillColor: FILL[m.colour] || FILL.grey});
    return true;
  }
  function resetMarkers() {
    if (layer) map.removeLayer(layer);
    layer = null; markers.clear();
  }
  function drawMarkers(list, removed) {
    list = list.filter((m) => m.latitude != null && m.longitude != null);
    if (!layer) {
      big = markerCount() > BIG;
      renderer = big ? L.canvas({padding: 0.5}) : null;
      layer = markerCount() > 500 ? L.markerClusterGroup({disableClusteringAtZoom: 18, chunkedLoading: true,
        iconCreateFunction: big ? clusterIcon : undefined}) : L.layerGroup();
      layer.addTo(map);
    }
    const added = [], restyled = [];
    for (const m of list) {
      const key = [m.colour, m.flashing, m.away, m.phone].join("|");
      let entry = markers.get(m.id);
      if (!entry) {
        const marker = makeMarker(m);
        marker.on("click", () => openCard(m.id));
        added.push(marker);
        entry = {marker, key, m};
        markers.set(m.id, entry);
      } else {
        entry.m = m;
        if (entry.key !== key) {
          entry.key = key;
          if (restyle(entry, m)) restyled.push(entry.marker);
        }
      }
    }
    if (added.length) { if (layer.addLayers) layer.addLayers(added); else added.forEach((x) => layer.addLayer(x)); }
    if (restyled.length && layer.refreshClusters) layer.refreshClusters(restyled);  // once for them all
    for (const id of removed || []) {
      const entry = markers.get(id);
      if (entry) { layer.removeLayer(entry.marker); markers.delete(id); }
    }
    if (!fitted && list.length) {
      map.fitBounds(L.latLngBounds(list.map(position)).pad(0.15), {maxZoom: 17});
      fitted = true;
    }
    document.body.dataset.markers = String(markers.size);
  }
  function markerCount() { return state ? state.markerCount : 0; }
  setInterval(() => {  // flashing on the canvas: the few red-flashing circles blink
    if (!big) return;
    flashOn = !flashOn;
    for (const entry of markers.values()) {
      if (entry.m && entry.m.flashing) entry.marker.setStyle({fillOpacity: flashOn ? 0.95 : 0.25});
    }
  }, 800);
  const NOTICES = new Set(["rhythm", "early_warning"]);  // low-key notices: amber, never red
  function kindLabel(kind) { return kind === "system" ? t("system_kind") : t(kind); }
  function alarmColour(a) {
    if (a.kind === "system" || a.kind === "infrastructure" || a.kind === "device_offline" || a.kind === "low_battery" ||
        a.kind === "clock_skew") {
      return "grey";
    }
    if (a.state === "acknowledged") return "blue";
    if (a.kind === "panic" || (a.responders_called_at && !NOTICES.has(a.kind))) return "red";
    return "amber";
  }
  const MAINTENANCE = new Set(["device_offline", "low_battery", "clock_skew"]);
  // Maintenance alarms are grouped by home (SPEC section 3): one entry per home, its devices inside,
  // at the place of the home's oldest one.
  function groupedAlarms(alarms) {
    const out = [], homes = new Map();
    for (const a of alarms) {
      if (!MAINTENANCE.has(a.kind)) { out.push(a); continue; }
      const key = a.resident_id ? "r" + a.resident_id : "d" + a.device_id;
      let group = homes.get(key);
      if (!group) { group = {group: true, key, resident_id: a.resident_id, resident_name: a.resident_name, alarms: []}; homes.set(key, group); out.push(group); }
      group.alarms.push(a);
    }
    return out;
  }
  function drawGroup(g, now) {
    const oldest = g.alarms.reduce((x, a) => (a.opened_at < x ? a.opened_at : x), g.alarms[0].opened_at);
    const lines = g.alarms.map((a) => `<div class="meta" data-maintenance="${a.id}">${SW.esc(a.code)} · ` +
      `${kindLabel(a.kind)} · ${SW.esc(a.reason)}</div>`).join("");
    return `<li class="grey maintenance" data-home="${SW.esc(g.key)}" data-resident="${g.resident_id || ""}">` +
      `<div class="top"><span>${SW.esc(g.resident_name || "")} · ${t("maintenance")} (${g.alarms.length})</span>` +
      `<span class="timer" data-since="${oldest}">${SW.since(oldest, now)}</span></div>${lines}</li>`;
  }
  function drawAlarms() {
    const list = document.getElementById("alarms");
    const now = SW.now();
    const SEV = {critical: 0, high: 1, low: 2};
    const sorted = [...state.alarms.values()].sort((x, y) => (SEV[x.severity] ?? 9) - (SEV[y.severity] ?? 9) ||
      String(x.opened_at).localeCompare(String(y.opened_at)));
    list.innerHTML = groupedAlarms(sorted).map((a) => {
      if (a.group) return drawGroup(a, now);
      const step = a.step ? t("step", {n: a.step}) : "";
      const family = a.family_handling_at ? ` · ${t("family_handling")}` : "";
      const moved = a.activity_seen_at ? ` · ${t("movement")} ${SW.localTime(a.activity_seen_at)}` : "";
      const infra = a.possibly_infrastructure ? ` · <b class="infra">${t("possibly_infrastructure")}</b>` : "";
      const staff = role === "admin" || role === "operator";
      const canAct = staff && a.state === "open" && a.resident_id;
      const held = staff && a.state !== "resolved" && (a.kind === "infrastructure" || a.possibly_infrastructure);
      const escalate = held ? `<button data-act="escalate" data-id="${a.id}">${t("escalate")}</button>` : "";
      const actions = canAct || held ? `<div class="actions">` + (canAct ? `<button data-act="dispatch" data-id="${a.id}">${t("dispatch")}</button>` +
        `<button data-act="call-family" data-id="${a.id}">${t("call_family")}</button>` : "") + `${escalate}</div>` : "";
      return `<li class="${alarmColour(a)}" data-alarm="${a.id}" data-state="${a.state}" data-resident="${a.resident_id || ""}">` +
        `<div class="top"><span>${SW.esc(a.code)} ${SW.esc(a.resident_name || "")} · ${kindLabel(a.kind)}</span>` +
        `<span class="timer" data-since="${a.opened_at}">${SW.since(a.opened_at, now)}</span></div>` +
        `<div class="meta">${a.state === "acknowledged" ? t("acknowledged") + " " + SW.esc(a.acknowledged_by || "") : t("opened")}` +
        ` ${step}${family}${moved}${infra}</div><div class="meta">${SW.esc(a.reason)}</div>${actions}</li>`;
    }).join("") || `<li class="grey">${t("none")}</li>`;
  }
  function drawKpis() {
    const k = state.kpis;
    const pct = (v) => v == null ? "—" : Math.round(v * 100) + "%";
    const mins = (v) => v == null ? "—" : Math.round(v / 60) + "′";
    const items = [["residents", k.residents], ["active_today", k.active_today], ["open", k.open_alarms],
      ["devices_offline", k.devices_offline], ["month", k.alarms_this_month], ["median_ack", mins(k.median_ack_seconds)],
      ["ack60", pct(k.ack_within_60s_share)], ["onsite45", pct(k.on_site_45min_share)]];
    document.getElementById("kpis").innerHTML = items.map(([key, v]) =>
      `<div data-kpi="${key}"><dt>${t(key)}</dt><dd>${v}</dd></div>`).join("");
  }
  function drawBanner() {
    // what this server knows is blind (alerts.blind: database unreachable, scheduler not ticking, ingest
    // behind) and the open system alarms; while anything is blind the markers are grey (screen.css)
    const banner = document.getElementById("banner");
    const system = state ? state.system : [];
    const states = blindNow.filter((b) => b.what !== "system alarm open").map((b) => {
      const since = b.since ? SW.localTime(b.since) : new Date(b.since_wall * 1000).toLocaleTimeString();
      return `${t(b.what)} (${t("since")} ${since})`;
    });
    const parts = [...states, ...system.map((a) => a.reason)];
    banner.hidden = !parts.length;
    banner.textContent = parts.length ? `${t("system")} — ${parts.join("; ")}` : "";
    document.body.dataset.blind = states.length || system.length ? "1" : "0";
  }
  // A mass change (a district's silence) comes as one delta of many markers, as columns
  // (alerts/screen_model.py marker_columns: only the fields that changed; the rest is what this screen
  // holds, in `known`, kept in step with every delta at once). They are drawn a slice at a time so the
  // page never freezes; later deltas' markers queue behind, in order.
  const known = new Map();
  const work = [];
  const SLICE = 4000;
  let drawing = false, lastVersion = null;
  function expandColumns(c) {
    const names = Object.keys(c).filter((k) => k !== "n" && k !== "id");
    const out = new Array(c.n);
    let id = 0;
    for (let i = 0; i < c.n; i++) {
      id += c.id[i];
      const m = Object.assign({}, known.get(id), {id});
      for (const k of names) {
        const col = c[k];
        m[k] = Array.isArray(col) ? col[i] : ("all" in col ? col.all : col.values[col.index[i]]);
      }
      out[i] = m;
    }
    return out;
  }
  function queueMarkers(list, removed) {
    for (const m of list) known.set(m.id, m);
    for (const id of removed || []) known.delete(id);
    if (!work.length && list.length <= SLICE) {
      drawMarkers(list, removed || []);
      return;
    }
    work.push({list, removed: removed || []});
    document.body.dataset.drawing = "1";
    if (!drawing) { drawing = true; setTimeout(drainMarkers, 0); }
  }
  function drainMarkers() {
    let budget = SLICE;
    while (work.length && budget > 0) {
      const job = work[0];
      if (job.list.length > budget) {
        drawMarkers(job.list.slice(0, budget), []);
        job.list = job.list.slice(budget);
        budget = 0;
      } else {
        drawMarkers(job.list, job.removed);
        budget -= Math.max(job.list.length, 1);
        work.shift();
      }
    }
    if (work.length) { setTimeout(drainMarkers, 0); return; }
    drawing = false;
    document.body.dataset.drawing = "0";
    if (lastVersion != null) document.body.dataset.version = String(lastVersion);  // all of it drawn
  }
  function ring(ids) {
    if (knownAlarms && soundOn && ids.some((id) => !knownAlarms.has(id))) beep();
  }
  function render(next) {  // the whole picture (on connect, after a gap)
    const ids = next.alarms.map((a) => a.id);
    ring(ids);
    knownAlarms = new Set(ids);
    resetMarkers();
    work.length = 0; known.clear();
    const list = next.marker_columns ? expandColumns(next.marker_columns) : next.markers;  // a district: columns
    for (const m of list) known.set(m.id, m);
    state = {markerCount: list.length, alarms: new Map(next.alarms.map((a) => [a.id, a])),
             kpis: next.kpis, system: next.system};
    drawMarkers(list, []); drawAlarms(); drawKpis(); drawBanner();
    document.body.dataset.ready = "1";
  }
  function apply(delta) {  // what changed
    if (!state) return;
    lastVersion = delta.v;
    if (delta.markers || delta.removed || delta.marker_columns) {
      queueMarkers(delta.marker_columns ? expandColumns(delta.marker_columns) : delta.markers || [], delta.removed);
    }
    if (delta.alarms || delta.closed) {
      const fresh = (delta.alarms || []).map((a) => a.id).filter((id) => !state.alarms.has(id));
      for (const a of delta.alarms || []) state.alarms.set(a.id, a);
      for (const id of delta.closed || []) state.alarms.delete(id);
      ring(fresh);
      knownAlarms = new Set(state.alarms.keys());
      drawAlarms();
    }
    if (delta.kpis) { state.kpis = delta.kpis; drawKpis(); }
    if (delta.system) { state.system = delta.system; drawBanner(); }
    if (!work.length) document.body.dataset.version = String(delta.v);  // else once its markers are drawn
  }
  async function openCard(id) {
    const card = document.getElementById("card");
    try {
      const r = await SW.api(`/api/residents/${id}`);
      const devices = r.devices.map((d) => `<li>${SW.esc(d.external_id)} (${SW.esc(d.kind)}` +
        `${d.room ? " · " + SW.esc(t(d.room)) : ""}) · ` +
        `${d.online ? t("online") : t("offline")}${d.battery != null ? " · " + t("battery") + " " + d.battery + "%" : ""}` +
        `${d.clock_skew_count ? ` · <span class="clock-skew">${t("clock_skew")} ×${d.clock_skew_count}</span>` : ""}</li>`).join("");
      const contacts = r.contacts.map((c) => `<li>${SW.esc(c.name)} (${SW.esc(c.relation)}) ${SW.esc(c.phone)}</li>`).join("");
      const workers = r.workers.map((w) => `<li>${SW.esc(w.name)} ${SW.esc(w.phone)}</li>`).join("");
      card.innerHTML = `<h3>${SW.esc(r.name)} ${r.age ? "· " + r.age + t("age") : ""}</h3>` +
        `<p>${t("address")}: ${SW.esc(r.address)}</p><p>${t("last_activity")}: ${SW.localTime(r.last_activity_at)}</p>` +
        `<p>${SW.esc(r.grid || "")} / ${SW.esc(r.micro_grid || "")}</p>` +
        `<h4>${t("devices")}</h4><ul>${devices}</ul><h4>${t("contacts")}</h4><ul>${contacts}</ul>` +
        `<h4>${t("workers")}</h4><ul>${workers}</ul><button id="card-close">${t("close")}</button>`;
      card.hidden = false;
      document.getElementById("card-close").onclick = () => { card.hidden = true; };
    } catch (e) { card.hidden = true; }
  }
  document.getElementById("alarms").addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-act]");
    if (button) {
      e.stopPropagation();
      await SW.api(`/api/alarms/${button.dataset.id}/${button.dataset.act}`, {method: "POST"});
      return;
    }
    const item = e.target.closest("li[data-resident]");
    if (item && item.dataset.resident) openCard(item.dataset.resident);
  });
  setInterval(() => {
    const now = SW.now();
    document.querySelectorAll(".timer[data-since]").forEach((el) => { el.textContent = SW.since(el.dataset.since, now); });
    document.getElementById("clock").textContent = SW.clockTime(now);
  }, 1000);

  function setConn(up) {
    const conn = document.getElementById("conn");
    conn.className = up ? "up" : "down";
    conn.textContent = up ? t("live") : t("reconnecting");
    document.body.dataset.live = up ? "1" : "0";
  }
  function start() {
    SW.stream((kind, data) => {
      if (kind === "hello") role = data.role;
      if (kind === "clock") SW.setServerNow(data.now);
      if (kind === "state") render(data);
      if (kind === "delta") apply(data);
      if (kind === "blind") { blindNow = data; drawBanner(); }
    }, setConn, "transitions=0");
  }
  const login = document.getElementById("login");
  login.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const out = await SW.api("/api/auth/login", {method: "POST", body: JSON.stringify(
        {username: login.username.value, password: login.password.value})});
      SW.setToken(out.token); login.hidden = true; start();
    } catch (err) { document.getElementById("login-error").textContent = String(err.text || err.message || err); }
  });
  try { await SW.api("/api/auth/me"); start(); } catch (e) { login.hidden = false; }
})();
