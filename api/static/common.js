/* Shared by the map screen and the phone page: sign-in token, API calls, labels, datum conversion. */
"use strict";

const SW = (() => {
  const params = new URLSearchParams(location.search);
  if (params.get("token")) {
    localStorage.setItem("sw_token", params.get("token"));
    history.replaceState(null, "", location.pathname + location.hash);
  }
  const LABELS = {
    zh: {
      title: "守望 · 社区居家养老服务中心", open_alarms: "未处理告警", live: "实时", reconnecting: "重新连接中…",
      sound_on: "声音开", sound_off: "声音关", sound_blocked: "点击启用声音", residents: "监护老人", active_today: "今日有活动",
      open: "未处理", devices_offline: "设备离线", month: "本月告警", median_ack: "确认中位数",
      ack60: "60秒内确认", onsite45: "45分钟到场", system: "系统告警：监护失明", step: "第{n}步",
      family_handling: "家属处理中", dispatch: "派网格员", call_family: "呼叫家属", close: "关闭",
      early_warning: "无活动预警", superseded: "已转为正式告警",
      inactivity: "长时间无活动", panic: "紧急按钮", device_offline: "设备离线", low_battery: "电量低", clock_skew: "时钟超前",
      infrastructure: "设施故障（整片无信号）", routine: "作息异常", rhythm: "作息提醒",
      system_kind: "系统", acknowledged: "已确认", opened: "待处理", age: "岁", address: "地址",
      last_activity: "最后活动", devices: "设备", contacts: "家属", workers: "网格员", battery: "电量",
      online: "在线", offline: "离线", away: "外出", sign_in: "登录", username: "用户名", password: "密码",
      phone: "手机号", pin: "PIN码", my_alarms: "我的告警", accept: "我去处理", arrived: "已到达",
      resolve: "结案", outcome: "结果", note: "备注", back: "返回", none: "暂无告警", call: "拨打",
      map_amap: "高德地图", map_geo: "地图", movement: "有活动", phone_mark: "☎",
      resident_fine: "老人平安", needed_help: "需要帮助", taken_to_hospital: "已送医",
      away_with_family: "在家属处", device_fault: "设备故障", other: "其他", sign_out: "退出",
      infrastructure: "网络故障", possibly_infrastructure: "可能是网络故障", escalate: "非网络故障：升级",
      bathroom: "卫生间", bedroom: "卧室", kitchen: "厨房", living_room: "客厅", entrance: "门厅",
      blind: "监护失明", since: "自", "database unreachable": "数据库无法连接", "scheduler not ticking": "规则调度停止",
      "ingest behind": "数据接收滞后", "system alarm open": "系统告警",
      legend: "图例", legend_panic: "紧急按钮（闪烁）", legend_red: "正在呼叫响应人，尚无人确认",
      legend_blue: "已确认，有人处理", legend_amber: "预警，或正在给老人打确认电话（☎）",
      legend_grey: "设备离线或监护失明", legend_green: "正常", legend_away: "外出",
      maintenance: "设备维护", err_network: "无法连接服务器", err_401: "用户名或密码不正确，或登录已过期",
      err_403: "没有权限执行此操作", err_404: "未找到", err_409: "告警状态已变化，请刷新",
      err_422: "输入有误，请检查", err_429: "尝试次数过多，请稍后再试", err_500: "服务器出错，请稍后再试",
      // the phone page's states, results and sign-in notices
      st_open: "待处理", st_acknowledged: "已确认", st_accepted: "正在前往", st_arrived: "已到达现场",
      st_resolved: "已结案", st_family: "家属处理中", accepted_done: "已出发 ✓", arrived_done: "已到达 ✓",
      accepted_flash: "已记录：您正在前往", arrived_flash: "已记录：您已到达现场", resolved_flash: "已结案，谢谢您",
      action_failed: "操作未成功，请重试", signed_out: "已退出登录", session_expired: "登录已过期，请重新登录",
      sign_in_to_open: "请先登录以查看这条告警", login_failed: "手机号或PIN码不正确",
      too_many: "尝试次数过多，请稍后再试",
    },
    en: {
      title: "Shouwang · Community care centre", open_alarms: "Open alarms", live: "live",
      reconnecting: "reconnecting…", sound_on: "Sound on", sound_off: "Sound off",
      sound_blocked: "Click to allow sound",
      residents: "Residents", active_today: "Active today", open: "Open", devices_offline: "Devices offline",
      month: "Alarms this month", median_ack: "Median to ack", ack60: "Ack ≤ 60 s", onsite45: "On site ≤ 45 min",
      system: "System alarm: the watch is blind", step: "step {n}", family_handling: "family handling",
      early_warning: "Early warning", superseded: "taken over by an alarm",
      dispatch: "Dispatch grid worker", call_family: "Call family", close: "Close", inactivity: "No activity",
      panic: "Panic button", device_offline: "Device offline", low_battery: "Low battery", clock_skew: "Clock ahead", system_kind: "System",
      infrastructure: "Infrastructure (an area silent)", routine: "Routine", rhythm: "Rhythm notice",
      acknowledged: "acknowledged", opened: "open", age: "years", address: "Address",
      last_activity: "Last activity", devices: "Devices", contacts: "Family", workers: "Workers",
      battery: "battery", online: "online", offline: "offline", away: "away", sign_in: "Sign in",
      username: "User name", password: "Password", phone: "Phone", pin: "PIN", my_alarms: "My alarms",
      accept: "I'm going", arrived: "Arrived", resolve: "Resolve", outcome: "Outcome", note: "Note", back: "Back",
      none: "No open alarms", call: "Call", map_amap: "Amap", map_geo: "Map", movement: "movement",
      infrastructure: "Infrastructure incident", possibly_infrastructure: "possibly infrastructure",
      escalate: "Not infrastructure: escalate", blind: "The watch is blind", since: "since",
      bathroom: "bathroom", bedroom: "bedroom", kitchen: "kitchen", living_room: "living room", entrance: "entrance",
      "database unreachable": "database unreachable", "scheduler not ticking": "scheduler not ticking",
      "ingest behind": "ingest behind", "system alarm open": "system alarm",
      phone_mark: "☎", resident_fine: "Resident fine", needed_help: "Needed help",
      taken_to_hospital: "Taken to hospital", away_with_family: "Away with family", device_fault: "Device fault",
      other: "Other", sign_out: "Sign out",
      legend: "Legend", legend_panic: "Panic button (flashing)", legend_red: "Responders being called, nobody acknowledged",
      legend_blue: "Acknowledged, someone is on it", legend_amber: "Early warning, or check call to the resident (☎)",
      legend_grey: "Devices offline or the watch is blind", legend_green: "Active", legend_away: "Away",
      maintenance: "Maintenance", err_network: "Cannot reach the server",
      err_401: "Wrong user name or password, or the session has expired", err_403: "Not allowed",
      err_404: "Not found", err_409: "The alarm has changed: reload", err_422: "Please check the input",
      err_429: "Too many attempts: try again later", err_500: "Server error: try again later",
      st_open: "open", st_acknowledged: "acknowledged", st_accepted: "on the way", st_arrived: "on site",
      st_resolved: "resolved", st_family: "family handling", accepted_done: "On my way ✓", arrived_done: "Arrived ✓",
      accepted_flash: "Noted: you are on your way", arrived_flash: "Noted: you are on site",
      resolved_flash: "Resolved, thank you", action_failed: "That did not work; try again",
      signed_out: "Signed out", session_expired: "Your session has ended; sign in again",
      sign_in_to_open: "Sign in to open this alarm", login_failed: "Wrong phone number or PIN",
      too_many: "Too many attempts; try again later",
    },
  };
  let lang = "zh";
  const t = (key, vars) => {
    let text = (LABELS[lang] && LABELS[lang][key]) || LABELS.en[key] || key;
    for (const [k, v] of Object.entries(vars || {})) text = text.replace("{" + k + "}", v);
    return text;
  };
  const token = () => localStorage.getItem("sw_token");
  // An API error: ``message`` as before ("unauthorized" on 401, else the response's text: the phone page
  // tests them), ``status``, and ``text``: what a person reads, in the page's language (the server's
  // detail follows notify.language too, but is added only in "en", as before).
  function apiError(status, body, statusText) {
    let detail = "";
    try { const parsed = JSON.parse(body); detail = typeof parsed.detail === "string" ? parsed.detail : ""; } catch (e) { /* not JSON */ }
    const key = "err_" + (status >= 500 ? 500 : status);
    const error = new Error(status === 401 ? "unauthorized" : body || statusText);
    error.status = status;
    error.text = LABELS.en[key] ? t(key) + (lang === "en" && detail ? ` (${detail})` : "") : t("err_500");
    return error;
  }
  async function api(path, options = {}) {
    const headers = Object.assign({"Content-Type": "application/json"}, options.headers || {});
    if (token()) headers.Authorization = "Bearer " + token();
    let response;
    try { response = await fetch(path, Object.assign({}, options, {headers})); } catch (e) {
      const error = new Error("network"); error.text = t("err_network"); throw error;
    }
    if (!response.ok) throw apiError(response.status, await response.text(), response.statusText);
    return response.status === 204 ? null : response.json();
  }
  function stream(onEvent, onStatus, query) {
    let source = null;
    const open = () => {
      source = new EventSource("/api/stream?token=" + encodeURIComponent(token() || "") + (query ? "&" + query : ""));
      source.onopen = () => onStatus(true);
      source.onerror = () => {
        onStatus(false);
        if (source.readyState === EventSource.CLOSED) setTimeout(open, 3000);
      };
      for (const kind of ["state", "delta", "transition", "hello", "clock"]) {
        source.addEventListener(kind, (e) => onEvent(kind, JSON.parse(e.data)));
      }
    };
    open();
    return () => source && source.close();
  }
  // WGS-84 -> GCJ-02 (the public formula), for Amap links and GCJ-02 tiles.
  function outOfChina(lat, lon) { return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271; }
  function tLat(x, y) {
    let r = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += (20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2 / 3;
    r += (20 * Math.sin(y * Math.PI) + 40 * Math.sin(y / 3 * Math.PI)) * 2 / 3;
    return r + (160 * Math.sin(y / 12 * Math.PI) + 320 * Math.sin(y * Math.PI / 30)) * 2 / 3;
  }
  function tLon(x, y) {
    let r = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += (20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2 / 3;
    r += (20 * Math.sin(x * Math.PI) + 40 * Math.sin(x / 3 * Math.PI)) * 2 / 3;
    return r + (150 * Math.sin(x / 12 * Math.PI) + 300 * Math.sin(x / 30 * Math.PI)) * 2 / 3;
  }
  function toGcj02(lat, lon) {
    if (outOfChina(lat, lon)) return [lat, lon];
    const a = 6378245.0, ee = 0.00669342162296594323;
    let dLat = tLat(lon - 105, lat - 35), dLon = tLon(lon - 105, lat - 35);
    const radLat = lat / 180 * Math.PI;
    let magic = Math.sin(radLat);
    magic = 1 - ee * magic * magic;
    const sqrtMagic = Math.sqrt(magic);
    dLat = (dLat * 180) / ((a * (1 - ee)) / (magic * sqrtMagic) * Math.PI);
    dLon = (dLon * 180) / (a / sqrtMagic * Math.cos(radLat) * Math.PI);
    return [lat + dLat, lon + dLon];
  }
  function since(iso, now) {
    if (!iso) return "—";
    let s = Math.max(0, Math.floor((now - new Date(iso)) / 1000));
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    return (h ? h + ":" : "") + String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
  }
  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
      '"': "&quot;", "'": "&#39;"}[c]));
  }
  // Local time of the service's time zone (settings.timezone), 24-hour clock, whatever the browser's locale.
  let zone = "Asia/Shanghai";
  const formatter = (options) => {
    try { return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", Object.assign({timeZone: zone, hourCycle: "h23"}, options)); }
    catch (e) { return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", Object.assign({hourCycle: "h23"}, options)); }
  };
  function localTime(iso) {
    return iso ? formatter({year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"})
      .format(new Date(iso)) : "—";
  }
  function clockTime(ms) { return formatter({hour: "2-digit", minute: "2-digit", second: "2-digit"}).format(new Date(ms)); }
  async function init() {
    try {
      const config = await (await fetch("/api/ui/config")).json();
      lang = config.language || "zh";
      zone = config.timezone || zone;
      document.documentElement.lang = lang;
      document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
      return config;
    } catch (e) { return {language: "zh", map: {kind: "none"}}; }
  }
  let offset = 0;  // the service's clock minus this browser's (the service may run simulated time)
  const now = () => Date.now() + offset;
  const setServerNow = (iso) => { offset = new Date(iso) - Date.now(); };
  return {now, setServerNow, t, api, stream, toGcj02, since, esc, localTime, clockTime, token, init,
          setToken: (v) => localStorage.setItem("sw_token", v), clearToken: () => localStorage.removeItem("sw_token")};
})();
