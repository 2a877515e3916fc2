// What every dashboard page shares: the admin key (sessionStorage only), API calls, building DOM safely
// (text nodes only, never innerHTML, so a client named <script> renders as text), formatting, chart defaults.
"use strict";

const Dash = (() => {
  const KEY = "adminKey";
  const problems = [];

  function report(message) {
    problems.push(String(message));
    const box = document.getElementById("errors");
    box.hidden = false;
    box.textContent = problems.slice(-3).join(" · ");
  }
  function clearProblems() {
    problems.length = 0;
    const box = document.getElementById("errors");
    box.hidden = true;
    box.textContent = "";
  }
  window.addEventListener("error", (event) => report(event.message));
  window.addEventListener("unhandledrejection", (event) => report(event.reason && event.reason.message || event.reason));

  class AuthNeeded extends Error {}
  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  // The key travels in a header, never in a URL (URLs land in logs and history).
  async function call(method, path, { params, body } = {}) {
    const query = params ? "?" + new URLSearchParams(params).toString() : "";
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers["X-API-KEY"] = key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path + query, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                                 credentials: "omit", cache: "no-store" });
    if (response.status === 401) throw new AuthNeeded(path);  // 403 (operator endpoints off) is shown as it says
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      // A schema's refusal names the fields in details ({field: why}): the form's user needs them.
      const details = error.details && typeof error.details === "object" && !Array.isArray(error.details)
        ? " " + Object.entries(error.details).map(([field, why]) => `${field}: ${typeof why === "string" ? why : JSON.stringify(why)}`).join("; ")
        : "";
      throw new ApiError(response.status, error.code || "HTTP_" + response.status,
                         `${path}: ${error.message || "HTTP " + response.status}${details}`);
    }
    return data;
  }
  const get = (path, params) => call("GET", path, { params });
  const post = (path, body) => call("POST", path, { body: body === undefined ? {} : body });

  function showAuth(needed) {
    document.getElementById("auth").hidden = !needed;
    document.getElementById("forget-key").hidden = needed || !sessionStorage.getItem(KEY);
    if (needed) document.body.dataset.state = "auth";
  }

  // el("td", {className: "bad"}, "text", child): children are nodes or text, attributes set as properties.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([name, value]) => {
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (value !== undefined && value !== null) node[name] = value;
    });
    children.flat().forEach((child) => {
      if (child === null || child === undefined) return;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    });
    return node;
  }
  const fill = (id, ...nodes) => document.getElementById(id).replaceChildren(...nodes.flat());
  const set = (id, text) => { document.getElementById(id).textContent = text; };

  function format(value) {
    if (value === null || value === undefined) return "–";
    if (Math.abs(value) >= 1e6) return (value / 1e6).toFixed(1) + "M";
    if (Math.abs(value) >= 1e3) return (value / 1e3).toFixed(1) + "k";
    return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 1 ? 4 : 1);
  }
  // Milliseconds: whole above 10 (a tenth of a millisecond is noise there), "1.2k" past a second.
  const ms = (value) => (value === null || value === undefined ? "–" : value >= 1000 ? format(value)
                         : value >= 10 ? String(Math.round(value)) : value.toFixed(1));
  // Dollars: cents below $100, whole above, and thousands grouped ("$63,800", not "$63800").
  const usd = (value) => (value === null || value === undefined ? "–" : "$" + Number(value).toLocaleString("en-US",
    { minimumFractionDigits: value >= 100 ? 0 : 2, maximumFractionDigits: value >= 100 ? 0 : 2 }));
  const time = (iso) => (iso ? String(iso).slice(0, 19).replace("T", " ") : "–");
  // Long labels (model names) are cut on the axis; the tooltip shows them whole.
  const shorten = (text, limit = 18) => (text.length > limit ? text.slice(0, limit - 1) + "…" : text);

  const COLORS = ["#2563eb", "#f59e0b", "#dc2626", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d"];
  if (window.Chart) {
    Chart.defaults.font.family = "system-ui, sans-serif";
    Chart.defaults.animation = false;  // figures refresh every 30 s; animating them only blurs the reading
    Chart.defaults.maintainAspectRatio = false;
  }

  async function start(load, every) {
    document.getElementById("auth").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, document.getElementById("admin-key").value);
      document.getElementById("admin-key").value = "";
      clearProblems();
      run();
    });
    document.getElementById("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      location.reload();
    });
    let latest = 0;
    // A run started while another is in flight (a refresh, a new filter) wins: the older one's answer is
    // dropped (load is told by stale()), and only the latest sets the page's state.
    async function run() {
      const mine = ++latest;
      const stale = () => mine !== latest;
      document.body.dataset.state = "loading";  // set at once, so a reader (or a test) waits for "ready"
      try {
        await load(stale);
        if (stale()) return;
        showAuth(false);
        set("updated", "updated " + new Date().toISOString().slice(11, 19) + " UTC");  // as every time shown
        document.body.dataset.state = "ready";
      } catch (error) {
        if (stale()) return;
        if (error instanceof AuthNeeded) { showAuth(true); return; }
        report(error.message || error);
        document.body.dataset.state = "error";
      }
    }
    await run();
    // No refresh while the key is asked for: it could only be refused again, and logged as such.
    if (every) setInterval(() => { if (document.body.dataset.state !== "auth") run(); }, every);
    return run;
  }

  return { get, post, el, fill, set, format, ms, usd, time, shorten, report, clearProblems, start, COLORS,
           AuthNeeded, ApiError };
})();
