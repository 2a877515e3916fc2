// The clients page: keys (prefixes only), limits, budgets with spend bars, the forecast, and create /
// rotate / revoke through /admin. A new secret is shown once, in the page, and kept nowhere.
"use strict";

const { el, fill, set, format, usd } = Dash;
let forecastByClient = new Map();

function spendBar(client) {
  if (client.budget_usd === undefined || client.budget_usd === null) return el("span", { className: "muted" }, "no budget");
  const spent = Number(client.spent_usd || 0);
  const share = client.budget_usd > 0 ? spent / client.budget_usd : (spent > 0 ? 1 : 0);
  const fillBar = el("span", { className: "fill" + (share >= 1 ? " over" : share >= 0.8 ? " warn" : "") });
  fillBar.style.width = Math.min(100, share * 100).toFixed(1) + "%";  // CSSOM, which the CSP allows
  // A spent budget says so in words, not only by a red bar at 100 % (the key is refused until the period ends).
  const spentOut = share >= 1 ? [el("span", { className: "bad block over-label" },
    `budget spent: refused until ${Dash.time(client.budget_resets_at)} UTC`)] : [];
  return el("span", { className: "spend", title: `${usd(spent)} of ${usd(client.budget_usd)}` },
            el("span", { className: "bar", role: "meter", ariaValueNow: String(spent), ariaValueMax: String(client.budget_usd) }, fillBar),
            el("span", { className: "figure" }, `${usd(spent)} / ${usd(client.budget_usd)} (${(share * 100).toFixed(0)} %)`),
            ...spentOut);
}

function budgetText(client) {
  if (client.budget_usd === undefined) return "–";  // the server has no budgets yet
  if (client.budget_usd === null) return "none";
  return `${usd(client.budget_usd)} / ${client.budget_period || "month"}`;
}

function forecastCell(client) {
  const f = forecastByClient.get(client.id);
  if (!f) return el("span", { className: "muted" }, "–");
  const period = (client.budget_period || (f.budget && f.budget.period) || "month") === "day" ? "day" : "month";
  const cost = f[period] && f[period].cost_usd;
  // A key with no complete day of history has nothing to project from: its figure is what it spent so far.
  const range = f.history_days === 0 ? "(no history yet: spent so far)" : `(${usd(cost.low)}–${usd(cost.high)})`;
  const parts = [el("span", {}, cost ? `${usd(cost.expected)} this ${period} ${range}` : "–")];
  const runsOut = (f.budget && f.budget.runs_out_at) || (f.quota && f.quota.runs_out_at);
  // runs_out_at in the past (or now) is when the budget was spent: "runs out" then would read as a future.
  const past = runsOut && Date.parse(runsOut) <= Date.parse(f.generated_at || new Date().toISOString());
  if (runsOut) parts.push(el("span", { className: "bad block" }, `${past ? "ran out" : "runs out"} ${Dash.time(runsOut)}`));
  return el("span", {}, parts);
}

function action(label, client, run) {
  return el("button", { type: "button", className: "action", dataset: { action: label.toLowerCase(), client: client.id },
                        onclick: () => run(client) }, label);
}

function showIssued(client) {
  set("issued-name", client.name);
  set("issued-key", client.api_key);
  document.getElementById("issued").hidden = false;
}

async function rotate(client) {
  if (!confirm(`Give ${client.name} a new key? The old one stops at once.`)) return;
  showIssued(await Dash.post(`/admin/clients/${client.id}/rotate`));
  await refresh();
}

async function revoke(client) {
  if (!confirm(`Revoke ${client.name}'s key? It stops working at once.`)) return;
  await Dash.post(`/admin/clients/${client.id}/revoke`);
  await refresh();
}

function forecastTiles(forecast) {
  if (!forecast) {
    return [el("p", { id: "no-forecast", className: "muted" },
               "No forecast: this server does not answer /analytics/forecast, or has too little history yet.")];
  }
  const tile = (label, f) => el("div", { className: "tile" }, el("span", { className: "label" }, label),
    el("span", { className: "value" }, usd(f.cost_usd.expected)),
    el("span", { className: "muted block" }, `${usd(f.cost_usd.low)}–${usd(f.cost_usd.high)} · ${format(f.tokens.expected)} tokens`),
    el("span", { className: "muted block" }, `so far ${usd(f.cost_usd.so_far)}`));
  return [tile("Expected cost today", forecast.total.day), tile("Expected cost this month", forecast.total.month),
          el("p", { className: "muted" }, `from ${forecast.history_days} days of history, seasonality ${forecast.seasonality}; `
                                          + `generated ${Dash.time(forecast.generated_at)} UTC`)];
}

async function forecast() {
  try {
    return await Dash.get("/analytics/forecast");
  } catch (error) {
    if (error instanceof Dash.ApiError && (error.status === 404 || error.status === 405 || error.status === 501)) return null;
    throw error;
  }
}

async function load(stale) {
  const [list, predicted] = await Promise.all([Dash.get("/admin/clients"), forecast()]);
  if (stale()) return;
  forecastByClient = new Map(((predicted && predicted.clients) || []).map((c) => [c.client_id, { ...c, generated_at: predicted.generated_at }]));
  fill("forecast", forecastTiles(predicted));
  fill("client-rows", list.length ? list.map((c) => el("tr", { dataset: { clientId: c.id, state: c.state || "" } },
    el("td", {}, c.id), el("td", { className: "name" }, c.name), el("td", {}, el("code", {}, (c.key_prefix || "") + "…")),
    el("td", { className: c.state === "revoked" ? "bad" : "" }, c.state || (c.active ? "active" : "revoked")),
    el("td", {}, c.rate_limit || "default"),
    el("td", {}, c.daily_token_quota === null || c.daily_token_quota === undefined ? "default"
                 : c.daily_token_quota === 0 ? "unlimited" : format(c.daily_token_quota)),
    el("td", {}, budgetText(c)), el("td", {}, spendBar(c)), el("td", {}, forecastCell(c)), el("td", {}, Dash.time(c.created_at)),
    el("td", {}, c.active ? [action("Rotate", c, rotate), action("Revoke", c, revoke)] : [])))
    : [el("tr", {}, el("td", { colSpan: 11, className: "muted" }, "No client keys yet: the proxy is open to anyone who reaches it."))]);
}

let refresh = load;

document.getElementById("create").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = { name: form.elements.name.value.trim() };
  if (form.elements.rate_limit.value.trim()) body.rate_limit = form.elements.rate_limit.value.trim();
  if (form.elements.daily_token_quota.value !== "") body.daily_token_quota = Number(form.elements.daily_token_quota.value);
  // Budgets are sent only when given, so the form works on a server without them too.
  if (form.elements.budget_usd.value !== "") body.budget_usd = Number(form.elements.budget_usd.value);
  if (form.elements.budget_period.value) body.budget_period = form.elements.budget_period.value;
  try {
    Dash.clearProblems();
    showIssued(await Dash.post("/admin/clients", body));
    form.reset();
    await refresh();
  } catch (error) {
    Dash.report(error.message || error);
  }
});
document.getElementById("issued-dismiss").addEventListener("click", () => {
  set("issued-key", "");
  document.getElementById("issued").hidden = true;
});

Dash.start(load, 60000).then((run) => { refresh = run; });
