// The request log: filters (kept in the page's query string, so a view can be shared; the admin key never
// is), pages of /analytics/requests, and one request whole from /analytics/requests/<id> (#<id> in the URL).
"use strict";

const { el, fill, set, format } = Dash;
const PAGE_SIZE = 50;
const FIELDS = ["client", "model", "route", "status", "outcome", "error_code", "from", "to"];
const form = document.getElementById("filters");
let page = 1;

// datetime-local holds a wall-clock time with no zone: the page reads and writes it as UTC.
const toInput = (iso) => (iso ? iso.slice(0, 19) : "");
const fromInput = (value) => (value ? (value.length === 16 ? value + ":00" : value) + "Z" : "");

function filtersFromUrl() {
  const query = new URLSearchParams(location.search);
  FIELDS.forEach((name) => {
    const value = query.get(name) || "";
    form.elements[name].value = name === "from" || name === "to" ? toInput(value) : value;
  });
  page = Math.max(1, Number(query.get("page")) || 1);
}

function filterParams() {
  const params = {};
  FIELDS.forEach((name) => {
    const raw = form.elements[name].value.trim();
    const value = name === "from" || name === "to" ? fromInput(raw) : raw;
    if (value) params[name] = value;
  });
  return params;
}

function remember(params) {
  const query = new URLSearchParams({ ...params, ...(page > 1 ? { page } : {}) }).toString();
  history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
}

function statusCell(code) { return el("td", { className: code >= 400 ? "bad" : "" }, code); }

// The log holds client ids; their names come from /admin/clients, read once a page load (a server without
// that list, or one that refuses it, shows ids alone).
let clientNames = null;
async function names() {
  if (!clientNames) {
    try {
      clientNames = new Map((await Dash.get("/admin/clients")).map((c) => [c.id, c.name]));
    } catch (error) {
      if (error instanceof Dash.AuthNeeded) throw error;
      clientNames = new Map();
    }
  }
  return clientNames;
}
const clientLabel = (id) => (id === null || id === undefined ? null
                             : clientNames && clientNames.has(id) ? `${id} · ${clientNames.get(id)}` : String(id));

async function loadPage(stale) {
  const params = filterParams();
  remember(params);
  const [data] = await Promise.all([Dash.get("/analytics/requests", { ...params, page, page_size: PAGE_SIZE }), names()]);
  if (stale()) return;
  set("total", format(data.total));
  set("page", page);
  document.getElementById("prev").disabled = page <= 1;
  document.getElementById("next").disabled = page * PAGE_SIZE >= data.total;
  fill("rows", data.requests.length ? data.requests.map((r) => {
    const link = el("a", { href: "#" + encodeURIComponent(r.request_id), className: "request-link" }, r.request_id);
    return el("tr", { dataset: { requestId: r.request_id } },
      el("td", {}, Dash.time(r.created_at)), el("td", {}, link), el("td", { title: clientLabel(r.client_id) || "" }, r.client_id ?? "–"),
      el("td", {}, r.route), el("td", {}, r.model_used || r.model_requested || "–"), statusCell(r.status_code),
      el("td", {}, r.error_code || ""), el("td", {}, Dash.ms(r.latency_ms)), el("td", {}, format(r.total_tokens)),
      el("td", {}, r.attempt_count ?? "–"));
  }) : [el("tr", {}, el("td", { colSpan: 10, className: "muted" }, "No request matches these filters."))]);
}

function pairs(dl, entries) {
  fill(dl, entries.flatMap(([name, value]) => [el("dt", {}, name),
                                               el("dd", {}, value === null || value === undefined ? "–" : String(value))]));
}

function headerRows(id, headers) {
  const entries = headers ? Object.entries(headers) : [];
  fill(id, entries.length ? entries.map(([name, value]) => el("tr", {}, el("th", {}, name),
                                                               el("td", {}, Array.isArray(value) ? value.join(", ") : value)))
                          : [el("tr", {}, el("td", { className: "muted" }, "none"))]);
}

// A JSON body is shown indented; anything else as it came.
function pretty(text) {
  if (text === null || text === undefined) return "(not kept)";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

async function showDetail(requestId) {
  const box = document.getElementById("detail");
  if (!requestId) { box.hidden = true; return; }
  const d = await Dash.get(`/analytics/requests/${encodeURIComponent(requestId)}`);
  set("d-id", d.request_id);
  pairs("d-fields", [["Time (UTC)", Dash.time(d.created_at)], ["Method", d.method], ["Route", d.route],
                     ["Client", clientLabel(d.client_id)], ["Model asked", d.model_requested], ["Model used", d.model_used],
                     ["Status", d.status_code], ["Error", d.error_code && `${d.error_code}: ${d.error_message || ""}`],
                     ["Latency ms", Dash.ms(d.latency_ms)], ["Upstream ms", Dash.ms(d.upstream_latency_ms)],
                     ["First byte ms", Dash.ms(d.ttfb_ms)], ["Tokens in / out / total",
                       `${format(d.prompt_tokens)} / ${format(d.completion_tokens)} / ${format(d.total_tokens)}`],
                     ["Streamed", d.streamed], ["Finish", d.finish_reason], ["Cache", d.cache_status]]);
  fill("d-attempts", (d.attempts || []).length ? d.attempts.map((a) => el("tr", {},
    el("td", {}, a.number), el("td", {}, Dash.time(a.started_at)), el("td", {}, a.model), el("td", {}, a.key_id),
    el("td", {}, a.outcome), statusCell(a.status_code), el("td", {}, a.error_code || ""), el("td", {}, Dash.ms(a.latency_ms))))
    : [el("tr", {}, el("td", { colSpan: 8, className: "muted" }, "No upstream attempt (answered by the proxy)."))]);
  const x = d.exchange;
  document.getElementById("d-no-exchange").hidden = Boolean(x);
  document.getElementById("d-exchange-body").hidden = !x;
  if (x) {
    pairs("d-exchange-fields", [["Path", x.path], ["Query", x.query], ["Action", x.action], ["Upstream status", x.upstream_status],
                                ["Key from", x.key_source], ["Bytes in / out", `${format(x.request_bytes)} / ${format(x.response_bytes)}`],
                                ["Aborted", x.aborted]]);
    headerRows("d-request-headers", x.request_headers);
    headerRows("d-response-headers", x.response_headers);
    set("d-request-body", pretty(x.request_body));
    set("d-response-body", pretty(x.response_body));
    set("d-request-truncated", x.request_truncated ? "(truncated)" : "");
    set("d-response-truncated", x.response_truncated ? "(truncated)" : "");
  }
  box.hidden = false;
  box.scrollIntoView({ block: "start" });
}

const currentId = () => decodeURIComponent(location.hash.slice(1));

let suggested = false;

async function load(stale) {
  await loadPage(stale);
  if (stale()) return;
  if (!suggested) { suggested = true; suggest().catch(() => {}); }  // hints only: a failure is not news
  await showDetail(currentId());
}

// The datalists: which models, routes and clients the last 30 days saw (a hint; any value may be typed).
async function suggest() {
  const to = new Date();
  const from = new Date(to.getTime() - 30 * 86400 * 1000);
  const span = { from: from.toISOString(), to: to.toISOString() };
  for (const [by, id] of [["model", "models"], ["route", "routes"], ["client", "client-ids"]]) {
    const usage = await Dash.get("/analytics/usage", { ...span, group_by: by });
    fill(id, usage.groups.filter((g) => g.key !== null && g.key !== "").map((g) => el("option", { value: g.key })));
  }
}

filtersFromUrl();
Dash.start(load).then((run) => {
  const rerun = () => { Dash.clearProblems(); return run(); };
  form.addEventListener("submit", (event) => { event.preventDefault(); page = 1; rerun(); });
  form.addEventListener("reset", () => setTimeout(() => { page = 1; rerun(); }));
  document.getElementById("prev").addEventListener("click", () => { page -= 1; rerun(); });
  document.getElementById("next").addEventListener("click", () => { page += 1; rerun(); });
  document.getElementById("d-close").addEventListener("click", () => {
    history.replaceState(null, "", location.pathname + location.search);
    document.getElementById("detail").hidden = true;
  });
  window.addEventListener("hashchange", () => showDetail(currentId()).catch((error) => Dash.report(error.message)));
});
