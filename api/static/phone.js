/* The grid worker's phone page: my grid's open alarms; accept, arrived, resolve with an outcome.
   Every state reads as itself (待处理, 已确认, 正在前往, 已到达, 已结案), every tap shows its result at once,
   and an ended session shows the sign-in form alone with "登录已过期". */
"use strict";

(async () => {
  await SW.init();
  const t = SW.t;
  const $ = (id) => document.getElementById(id);
  let alarms = [];
  let signedIn = false;
  let closeStream = null;
  let watchdog = null;
  const OUTCOMES = ["resident_fine", "needed_help", "taken_to_hospital", "away_with_family", "device_fault", "other"];

  // the state a person reads: resolved, arrived, accepted (on the way), acknowledged, family handling, open
  function stateOf(a) {
    if (a.state === "resolved") return "resolved";
    if (a.arrived_at) return "arrived";
    if (a.accepted_at) return "accepted";
    if (a.state === "acknowledged") return "acknowledged";
    if (a.family_handling_at) return "family";
    return "open";
  }
  function stateText(a) {
    const s = stateOf(a);
    const by = s === "arrived" ? a.arrived_by : s === "resolved" ? a.resolved_by
      : s === "family" ? a.family_handling_by : a.acknowledged_by;
    let text = t("st_" + s) + (by ? ` · ${by}` : "");
    if (s === "resolved" && a.outcome) text += ` · ${t(a.outcome)}`;
    return text;
  }
  function colour(a) {
    const s = stateOf(a);
    if (s === "resolved") return "green";
    if (s !== "open" && s !== "family") return "blue";
    const notice = a.kind === "rhythm" || a.kind === "early_warning";  // low-key notices: amber, never red
    return a.kind === "panic" || (a.responders_called_at && !notice) ? "red" : "amber";
  }
  function unauthorized(err) { return err && err.message === "unauthorized"; }
  async function call(path, options) {
    try { return await SW.api(path, options); } catch (err) {
      if (unauthorized(err)) signedOut(true);
      throw err;
    }
  }
  async function load() {
    alarms = await call("/api/alarms?state=open");
    route();
  }
  function showList() {
    if (!signedIn) return;
    $("detail").hidden = true;
    $("list").hidden = false;
    $("list").innerHTML = alarms.map((a) => `<li class="${colour(a)}" data-alarm="${a.id}" data-state="${stateOf(a)}">` +
      `<b>${SW.esc(a.code)} ${SW.esc(a.resident_name || "")}</b> · ${t(a.kind)}` +
      `${a.possibly_infrastructure ? ` · <b class="infra">${t("possibly_infrastructure")}</b>` : ""}<div class="sub">${SW.esc(a.reason)}</div>` +
      `<div class="sub state">${SW.esc(stateText(a))}</div></li>`
    ).join("") || `<li>${t("none")}</li>`;
  }
  function flash(text) {
    const box = $("flash");
    box.textContent = text;
    box.hidden = !text;
  }
  async function showAlarm(id) {
    let alarm, resident = null;
    try { alarm = await call(`/api/alarms/${id}`); } catch (e) {
      if (signedIn) location.hash = "";
      return;
    }
    if (alarm.resident_id) { try { resident = await call(`/api/residents/${alarm.resident_id}`); } catch (e) { resident = null; } }
    if (signedIn) render(alarm, resident);
  }
  function render(alarm, resident) {
    $("list").hidden = true;
    const d = $("detail");
    d.hidden = false;
    let place = "";
    if (resident && resident.latitude != null) {
      const [glat, glon] = SW.toGcj02(resident.latitude, resident.longitude);
      const amap = `https://uri.amap.com/marker?position=${glon.toFixed(6)},${glat.toFixed(6)}` +
        `&name=${encodeURIComponent(resident.name)}&coordinate=gaode`;
      place = `<a id="amap" href="${amap}">${t("map_amap")}</a>` +
        `<a id="geo" href="geo:${resident.latitude.toFixed(6)},${resident.longitude.toFixed(6)}">${t("map_geo")}</a>`;
    }
    const phones = resident ? [[resident.name, resident.phone], ...resident.contacts.map((c) => [c.name, c.phone])]
      .filter(([, p]) => p).map(([n, p]) => `<a href="tel:${SW.esc(p)}">${t("call")} ${SW.esc(n)}</a>`).join("") : "";
    const state = stateOf(alarm);
    const open = state !== "resolved";
    const accepted = state === "accepted" || state === "arrived";
    d.innerHTML = `<div class="box"><h2>${SW.esc(alarm.code)} ${SW.esc(alarm.resident_name || "")}</h2>` +
      `<p>${SW.esc(alarm.reason)}</p>${alarm.possibly_infrastructure ? `<p class="infra" id="infra">${t("possibly_infrastructure")} (A${alarm.incident_id})</p>` : ""}${resident ? `<p>${t("address")}: ${SW.esc(resident.address)}</p>` : ""}` +
      `<p>${place}</p><p>${phones}</p><p id="alarm-state" class="state ${colour(alarm)}" data-state="${state}">` +
      `${SW.esc(stateText(alarm))}</p></div>` +
      (open ? `<div class="box"><button id="accept"${accepted ? " disabled" : ""}>` +
      `${accepted ? t("accepted_done") : t("accept")}</button>` +
      `<button id="arrived" class="secondary"${state === "arrived" ? " disabled" : ""}>` +
      `${state === "arrived" ? t("arrived_done") : t("arrived")}</button>` +
      `<label><span>${t("outcome")}</span><select id="outcome">${OUTCOMES.map((o) => `<option value="${o}">${t(o)}</option>`).join("")}</select></label>` +
      `<label><span>${t("note")}</span><textarea id="note" rows="2"></textarea></label>` +
      `<button id="resolve" class="warn">${t("resolve")}</button></div>` : "") +
      `<button id="back" class="secondary">${t("back")}</button>`;
    $("back").onclick = () => { flash(""); location.hash = ""; };
    if (open) {
      const act = async (button, path, body, done) => {
        button.disabled = true;
        try {
          const updated = await call(`/api/alarms/${alarm.id}/${path}`,
            {method: "POST", body: body ? JSON.stringify(body) : undefined});
          render(updated, resident);  // at once, from the answer: no wait for the stream
          flash(t(done));
          alarms = alarms.map((a) => (a.id === updated.id ? updated : a));
        } catch (err) {
          if (!signedIn) return;
          button.disabled = false;
          flash(t("action_failed"));
        }
      };
      $("accept").onclick = (e) => act(e.currentTarget, "accept", null, "accepted_flash");
      $("arrived").onclick = (e) => act(e.currentTarget, "arrived", null, "arrived_flash");
      $("resolve").onclick = (e) => act(e.currentTarget, "resolve",
        {outcome: $("outcome").value, note: $("note").value || null}, "resolved_flash");
    }
  }
  function route() {
    if (!signedIn) return;
    const match = location.hash.match(/^#alarm-(\d+)$/);
    if (match) showAlarm(match[1]); else { flash(""); showList(); }
  }
  window.addEventListener("hashchange", route);
  $("list").addEventListener("click", (e) => {
    const item = e.target.closest("li[data-alarm]");
    if (item) location.hash = `alarm-${item.dataset.alarm}`;
  });
  const login = $("login");
  // signed out (by the button, or the session ended): nothing of the old session stays on the page
  function signedOut(expired) {
    signedIn = false;
    delete document.body.dataset.signedIn;
    if (closeStream) { closeStream(); closeStream = null; }
    if (watchdog) { clearInterval(watchdog); watchdog = null; }
    SW.clearToken();
    alarms = [];
    $("list").innerHTML = ""; $("list").hidden = true;
    $("detail").innerHTML = ""; $("detail").hidden = true;
    $("signout").hidden = true;
    flash("");
    $("notice").textContent = expired ? t("session_expired") : t("signed_out");
    $("notice").hidden = false;
    document.body.dataset.signedOut = expired ? "expired" : "1";
    login.hidden = false;
  }
  $("signout").onclick = async () => {
    try { await SW.api("/api/auth/logout", {method: "POST"}); } catch (e) { /* signed out anyway */ }
    signedOut(false);
  };
  login.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const out = await SW.api("/api/auth/worker-login", {method: "POST",
        body: JSON.stringify({phone: login.phone.value, pin: login.pin.value})});
      SW.setToken(out.token);
      login.pin.value = "";
      begin();
    } catch (err) {
      $("login-error").textContent = String(err.message || err).includes("429") || /too many/.test(String(err.message))
        ? t("too_many") : t("login_failed");
    }
  });
  async function stillSignedIn() {
    try { await SW.api("/api/auth/me"); return true; } catch (err) {
      if (unauthorized(err) && signedIn) signedOut(true);
      return false;
    }
  }
  function begin() {
    signedIn = true;
    login.hidden = true;
    $("notice").hidden = true;
    $("login-error").textContent = "";
    $("signout").hidden = false;
    delete document.body.dataset.signedOut;
    document.body.dataset.signedIn = "1";
    load().catch(() => {});
    closeStream = SW.stream((kind) => { if (kind === "transition") load().catch(() => {}); },
      (live) => { if (!live) stillSignedIn(); });
    watchdog = setInterval(stillSignedIn, 60000);  // a session ending while the page is idle shows at once
  }
  async function start() {
    try { await SW.api("/api/auth/me"); return begin(); } catch (e) { /* maybe a stale stored token */ }
    if (SW.token()) {  // an SMS link's cookie may be valid where a stored token has expired
      SW.clearToken();
      try { await SW.api("/api/auth/me"); return begin(); } catch (e) { /* not signed in */ }
    }
    login.hidden = false;
    if (location.hash) {
      $("notice").textContent = t("sign_in_to_open");
      $("notice").hidden = false;
    }
  }
  start();
})();
