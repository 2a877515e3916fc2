// The operator's dashboard: figures from /analytics, charts drawn on canvas, refreshed every 30 s.
"use strict";

const REFRESH_MS = 30000;
const COLORS = ["#2563eb", "#f59e0b", "#dc2626", "#059669", "#7c3aed", "#db2777"];
const problems = [];

function report(message) {
  problems.push(String(message));
  const box = document.getElementById("errors");
  box.hidden = false;
  box.textContent = problems.slice(-3).join(" · ");
}
window.addEventListener("error", (event) => report(event.message));
window.addEventListener("unhandledrejection", (event) => report(event.reason));

class AuthNeeded extends Error {}

async function api(path, params) {
  const query = new URLSearchParams(params).toString();
  const headers = {};
  const key = sessionStorage.getItem("adminKey");
  if (key) headers["X-API-KEY"] = key;
  const response = await fetch(`/analytics/${path}?${query}`, { headers });
  if (response.status === 401 || response.status === 403) throw new AuthNeeded(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function prepare(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  return ctx;
}

function axis(ctx, canvas, max, pad) {
  ctx.strokeStyle = "#d1d5db";
  ctx.fillStyle = "#6b7280";
  ctx.beginPath();
  ctx.moveTo(pad.left, pad.top);
  ctx.lineTo(pad.left, canvas.height - pad.bottom);
  ctx.lineTo(canvas.width - pad.right, canvas.height - pad.bottom);
  ctx.stroke();
  ctx.fillText(format(max), 2, pad.top + 8);
  ctx.fillText("0", 2, canvas.height - pad.bottom);
}

// Lines over time: series is [{name, values}], labels the bucket starts.
function lineChart(id, labels, series) {
  const canvas = document.getElementById(id);
  const ctx = prepare(canvas);
  const pad = { left: 48, right: 8, top: 16, bottom: 20 };
  const values = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(1e-9, ...values);
  axis(ctx, canvas, max, pad);
  const width = canvas.width - pad.left - pad.right;
  const height = canvas.height - pad.top - pad.bottom;
  const x = (i) => pad.left + (labels.length > 1 ? (i * width) / (labels.length - 1) : width / 2);
  const y = (v) => pad.top + height - (v / max) * height;
  let points = 0;
  series.forEach((s, n) => {
    ctx.strokeStyle = COLORS[n % COLORS.length];
    ctx.beginPath();
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v === null) { drawing = false; return; }
      if (drawing) ctx.lineTo(x(i), y(v)); else ctx.moveTo(x(i), y(v));
      drawing = true;
      points += 1;
    });
    ctx.stroke();
    ctx.fillStyle = COLORS[n % COLORS.length];
    ctx.fillText(s.name, pad.left + 8 + n * 70, 10);
  });
  if (labels.length) {
    ctx.fillStyle = "#6b7280";
    ctx.fillText(labels[0].slice(5, 16).replace("T", " "), pad.left, canvas.height - 4);
    ctx.fillText(labels[labels.length - 1].slice(5, 16).replace("T", " "), canvas.width - 90, canvas.height - 4);
  }
  canvas.dataset.points = String(points);
}

function barChart(id, rows) {
  const canvas = document.getElementById(id);
  const ctx = prepare(canvas);
  const pad = { left: 48, right: 8, top: 16, bottom: 20 };
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  axis(ctx, canvas, max, pad);
  const slot = (canvas.width - pad.left - pad.right) / Math.max(1, rows.length);
  const height = canvas.height - pad.top - pad.bottom;
  rows.forEach((row, i) => {
    const h = (row.value / max) * height;
    ctx.fillStyle = COLORS[i % COLORS.length];
    ctx.fillRect(pad.left + i * slot + 6, pad.top + height - h, slot - 12, h);
    ctx.fillStyle = "#374151";
    ctx.fillText(row.label.slice(0, 24), pad.left + i * slot + 6, canvas.height - 6);
  });
  canvas.dataset.points = String(rows.length);
}

function format(value) {
  if (value === null || value === undefined) return "–";
  if (Math.abs(value) >= 1e6) return (value / 1e6).toFixed(1) + "M";
  if (Math.abs(value) >= 1e3) return (value / 1e3).toFixed(1) + "k";
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 1 ? 4 : 1);
}

function set(id, text) { document.getElementById(id).textContent = text; }

function windowParams() {
  const hours = Number(document.getElementById("window").value);
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600 * 1000);
  return { params: { from: from.toISOString(), to: to.toISOString() }, unit: hours <= 48 ? "hour" : "day" };
}

async function load() {
  const { params, unit } = windowParams();
  try {
    const [summary, usage, performance, models, costs, fallbacks, latest] = await Promise.all([
      api("summary", params), api("usage", { ...params, group_by: unit }), api("performance", { ...params, bucket: unit }),
      api("usage", { ...params, group_by: "model" }), api("costs", params), api("fallbacks", params),
      api("requests", { ...params, page_size: 20 }),
    ]);
    document.getElementById("auth").hidden = true;
    set("t-requests", format(summary.requests));
    set("t-error-rate", (summary.error_rate * 100).toFixed(2) + " %");
    set("t-tokens", format(summary.total_tokens));
    const l = summary.latency_ms;
    set("t-latency", [l.p50, l.p95, l.p99].map(format).join(" / "));
    set("t-cost", "$" + summary.cost_usd.toFixed(4));
    set("t-cache", summary.cache.lookups ? (summary.cache.hit_rate * 100).toFixed(1) + " %" : "off");
    set("t-fallbacks", `${format(fallbacks.first_model_failed)} / ${format(fallbacks.retries)}`);

    const labels = usage.groups.map((g) => g.key);
    lineChart("c-requests", labels, [{ name: "requests", values: usage.groups.map((g) => g.requests) },
                                     { name: "errors", values: usage.groups.map((g) => g.errors) }]);
    lineChart("c-tokens", labels, [{ name: "tokens", values: usage.groups.map((g) => g.total_tokens) }]);
    lineChart("c-errors", labels, [{ name: "error rate", values: usage.groups.map((g) => (g.requests ? g.errors / g.requests : null)) }]);
    const series = performance.series;
    lineChart("c-latency", series.map((s) => s.bucket), ["p50", "p95", "p99"].map((p) => ({ name: p, values: series.map((s) => s.latency_ms[p]) })));
    barChart("c-models", models.groups.map((g) => ({ label: g.key, value: g.requests })));
    barChart("c-cost", costs.by_model.map((m) => ({ label: m.model, value: m.cost_usd })));

    const cooldowns = document.getElementById("cooldowns");
    cooldowns.replaceChildren(...(fallbacks.cooldowns_now.length ? fallbacks.cooldowns_now.map((c) => {
      const item = document.createElement("li");
      item.textContent = `${c.model} · ${c.key_id} · ${c.reason} · ${c.seconds_left} s left`;
      return item;
    }) : [Object.assign(document.createElement("li"), { textContent: "none" })]));

    const body = document.getElementById("latest");
    body.replaceChildren(...latest.requests.map((r) => {
      const row = document.createElement("tr");
      const cells = [r.created_at.slice(0, 19).replace("T", " "), r.route, r.model_used || "–", r.status_code,
                     format(r.latency_ms), format(r.total_tokens), r.cache_status || ""];
      cells.forEach((value, i) => {
        const cell = document.createElement("td");
        cell.textContent = String(value);
        if (i === 3 && r.status_code >= 400) cell.className = "bad";
        row.appendChild(cell);
      });
      return row;
    }));
    set("updated", "updated " + new Date().toLocaleTimeString());
    document.body.dataset.state = "ready";
  } catch (error) {
    if (error instanceof AuthNeeded) {
      document.getElementById("auth").hidden = false;
      document.body.dataset.state = "auth";
      return;
    }
    report(error.message || error);
    document.body.dataset.state = "error";
  }
}

document.getElementById("window").addEventListener("change", load);
document.getElementById("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("adminKey", document.getElementById("admin-key").value);
  load();
});
load();
setInterval(load, REFRESH_MS);
