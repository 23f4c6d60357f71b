/* The grid worker's phone page: my grid's open alarms; accept, arrived, resolve with an outcome. */
"use strict";

(async () => {
  await SW.init();
  const t = SW.t;
  const $ = (id) => document.getElementById(id);
  let alarms = [];
  const OUTCOMES = ["resident_fine", "needed_help", "taken_to_hospital", "away_with_family", "device_fault", "other"];

  function colour(a) {
    if (a.state === "acknowledged") return "blue";
    return a.kind === "panic" || a.responders_called_at ? "red" : "amber";
  }
  async function load() {
    alarms = await SW.api("/api/alarms?state=open");
    route();
  }
  function showList() {
    $("detail").hidden = true;
    $("list").hidden = false;
    $("list").innerHTML = alarms.map((a) => `<li class="${colour(a)}" data-alarm="${a.id}" data-state="${a.state}">` +
      `<b>${SW.esc(a.code)} ${SW.esc(a.resident_name || "")}</b> · ${t(a.kind)}` +
      `${a.possibly_infrastructure ? ` · <b class="infra">${t("possibly_infrastructure")}</b>` : ""}<div class="sub">${SW.esc(a.reason)}</div>` +
      `<div class="sub">${a.state === "acknowledged" ? t("acknowledged") + " " + SW.esc(a.acknowledged_by || "") : t("opened")}</div></li>`
    ).join("") || `<li>${t("none")}</li>`;
  }
  async function showAlarm(id) {
    let alarm, resident = null;
    try { alarm = await SW.api(`/api/alarms/${id}`); } catch (e) { location.hash = ""; return; }
    if (alarm.resident_id) { try { resident = await SW.api(`/api/residents/${alarm.resident_id}`); } catch (e) { resident = null; } }
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
    const open = alarm.state !== "resolved";
    d.innerHTML = `<div class="box"><h2>${SW.esc(alarm.code)} ${SW.esc(alarm.resident_name || "")}</h2>` +
      `<p>${SW.esc(alarm.reason)}</p>${alarm.possibly_infrastructure ? `<p class="infra" id="infra">${t("possibly_infrastructure")} (A${alarm.incident_id})</p>` : ""}${resident ? `<p>${t("address")}: ${SW.esc(resident.address)}</p>` : ""}` +
      `<p>${place}</p><p>${phones}</p><p id="alarm-state" data-state="${alarm.state}">` +
      `${alarm.state === "acknowledged" ? t("acknowledged") + " " + SW.esc(alarm.acknowledged_by || "") : t("opened")}</p></div>` +
      (open ? `<div class="box"><button id="accept">${t("accept")}</button><button id="arrived" class="secondary">${t("arrived")}</button>` +
      `<label><span>${t("outcome")}</span><select id="outcome">${OUTCOMES.map((o) => `<option value="${o}">${t(o)}</option>`).join("")}</select></label>` +
      `<label><span>${t("note")}</span><textarea id="note" rows="2"></textarea></label>` +
      `<button id="resolve" class="warn">${t("resolve")}</button></div>` : "") +
      `<button id="back" class="secondary">${t("back")}</button>`;
    $("back").onclick = () => { location.hash = ""; };
    if (open) {
      const act = async (path, body) => {
        await SW.api(`/api/alarms/${id}/${path}`, {method: "POST", body: body ? JSON.stringify(body) : undefined});
        await load();
      };
      $("accept").onclick = () => act("accept");
      $("arrived").onclick = () => act("arrived");
      $("resolve").onclick = () => act("resolve", {outcome: $("outcome").value, note: $("note").value || null});
    }
  }
  function route() {
    const match = location.hash.match(/^#alarm-(\d+)$/);
    if (match) showAlarm(match[1]); else showList();
  }
  window.addEventListener("hashchange", route);
  $("list").addEventListener("click", (e) => {
    const item = e.target.closest("li[data-alarm]");
    if (item) location.hash = `alarm-${item.dataset.alarm}`;
  });
  $("signout").onclick = async () => {
    try { await SW.api("/api/auth/logout", {method: "POST"}); } catch (e) { /* signed out anyway */ }
    SW.clearToken(); location.reload();
  };
  const login = $("login");
  login.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const out = await SW.api("/api/auth/worker-login", {method: "POST",
        body: JSON.stringify({phone: login.phone.value, pin: login.pin.value})});
      SW.setToken(out.token);
      login.hidden = true;
      begin();
    } catch (err) { $("login-error").textContent = String(err.message || err); }
  });
  function begin() {
    $("signout").hidden = false;
    document.body.dataset.signedIn = "1";
    load();
    SW.stream((kind) => { if (kind === "transition") load(); }, () => {});
  }
  try { await SW.api("/api/auth/me"); begin(); } catch (e) { login.hidden = false; }
})();
