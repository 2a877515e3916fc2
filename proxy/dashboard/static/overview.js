// The overview: tiles and Chart.js charts from /analytics, refreshed every 30 s.
"use strict";

const REFRESH_MS = 30000;
const { el, fill, set, format, COLORS } = Dash;
const charts = {};

// One chart per canvas, updated in place on refresh (a new Chart per refresh would leak listeners).
function draw(id, config) {
  if (charts[id]) {
    charts[id].data = config.data;
    charts[id].update();
  } else {
    charts[id] = new Chart(document.getElementById(id), config);
  }
}

const bucketLabel = (key) => String(key).slice(5, 16).replace("T", " ");

// Lines over time. Points are drawn (radius 3), so a window whose data fall in one bucket shows them
// rather than an empty chart; nulls (no requests in a bucket) leave a gap.
function lineChart(id, labels, series, percent = false) {
  draw(id, {
    type: "line",
    data: {
      labels: labels.map(bucketLabel),
      datasets: series.map((s, n) => ({ label: s.name, data: s.values, borderColor: COLORS[n % COLORS.length],
                                        backgroundColor: COLORS[n % COLORS.length], pointRadius: 3,
                                        pointHoverRadius: 5, borderWidth: 2, spanGaps: false, tension: 0.2,
                                        borderDash: s.dash })),
    },
    options: {
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, ticks: { callback: (v) => (percent ? v + " %" : format(v)) } },
                x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } } },
      plugins: { legend: { display: series.length > 1, position: "top", align: "end" } },
    },
  });
}

// Bars per model: long names cut on the axis, rotated when crowded, whole in the tooltip.
function barChart(id, rows, money = false) {
  const names = rows.map((r) => r.label);
  draw(id, {
    type: "bar",
    data: { labels: names, datasets: [{ label: money ? "USD" : "requests", data: rows.map((r) => r.value),
                                        backgroundColor: rows.map((_, i) => COLORS[i % COLORS.length]) }] },
    options: {
      scales: {
        x: { ticks: { autoSkip: false, maxRotation: 45, minRotation: 0,
                      // Cut to what a bar's slot holds (about 7 px a character), so labels never overlap.
                      callback(value) {
                        const slot = (this.chart.width - 60) / Math.max(1, names.length);
                        return Dash.shorten(this.getLabelForValue(value), Math.max(8, Math.floor(slot / 7)));
                      } } },
        y: { beginAtZero: true, ticks: { callback: (v) => (money ? "$" + format(v) : format(v)) } },
      },
      plugins: { legend: { display: false },
                 tooltip: { callbacks: { title: (items) => names[items[0].dataIndex],
                                         label: (item) => (money ? "$" + item.raw.toFixed(4) : format(item.raw)) } } },
    },
  });
}

function windowParams() {
  const hours = Number(document.getElementById("window").value);
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600 * 1000);
  return { params: { from: from.toISOString(), to: to.toISOString() }, unit: hours <= 48 ? "hour" : "day" };
}

async function load(stale) {
  const { params, unit } = windowParams();
  const get = (name, more) => Dash.get(`/analytics/${name}`, { ...params, ...more });
  const [summary, usage, performance, models, costs, fallbacks, latest] = await Promise.all([
    get("summary"), get("usage", { group_by: unit }), get("performance", { bucket: unit }),
    get("usage", { group_by: "model" }), get("costs"), get("fallbacks"), get("requests", { page_size: 20 }),
  ]);
  if (stale()) return;  // the window changed meanwhile
  set("t-requests", format(summary.requests));
  set("t-error-rate", (summary.error_rate * 100).toFixed(2) + " %");
  set("t-tokens", format(summary.total_tokens));
  const l = summary.latency_ms;
  set("t-latency", [l.p50, l.p95, l.p99].map(Dash.ms).join(" / "));
  // Cents once it is dollars; four places below, where a day of light use is a fraction of a cent.
  const places = summary.cost_usd >= 100 ? 2 : 4;
  set("t-cost", "$" + summary.cost_usd.toLocaleString("en-US", { minimumFractionDigits: places, maximumFractionDigits: places }));
  set("t-cache", summary.cache.lookups ? (summary.cache.hit_rate * 100).toFixed(1) + " %" : "off");
  set("t-fallbacks", `${format(fallbacks.first_model_failed)} / ${format(fallbacks.retries)}`);

  const labels = usage.groups.map((g) => g.key);
  lineChart("c-requests", labels, [{ name: "requests", values: usage.groups.map((g) => g.requests) },
                                   { name: "errors", values: usage.groups.map((g) => g.errors) }]);
  lineChart("c-tokens", labels, [{ name: "tokens", values: usage.groups.map((g) => g.total_tokens) }]);
  lineChart("c-errors", labels, [{ name: "error rate",
                                   values: usage.groups.map((g) => (g.requests ? (100 * g.errors) / g.requests : null)) }],
            true);
  const series = performance.series;
  lineChart("c-latency", series.map((s) => s.bucket),
            // p95 dashed: in an hour of few requests it is p99's very sample, and drawn over it would hide it.
            ["p50", "p95", "p99"].map((p) => ({ name: p, values: series.map((s) => s.latency_ms[p]),
                                                dash: p === "p95" ? [6, 4] : undefined })));
  barChart("c-models", models.groups.map((g) => ({ label: g.key || "(none)", value: g.requests })));
  barChart("c-cost", costs.by_model.map((m) => ({ label: m.model || "(none)", value: m.cost_usd })), true);

  fill("cooldowns", fallbacks.cooldowns_now.length
    ? fallbacks.cooldowns_now.map((c) => el("li", {}, `${c.model} · ${c.key_id} · ${c.reason} · ${c.seconds_left} s left`))
    : [el("li", {}, "none")]);
  fill("latest", latest.requests.map((r) => el("tr", {},
    el("td", {}, el("a", { href: "/dashboard/requests#" + encodeURIComponent(r.request_id), title: r.request_id },
                    Dash.time(r.created_at))), el("td", {}, r.route), el("td", {}, r.model_used || "–"),
    el("td", { className: r.status_code >= 400 ? "bad" : "" }, r.status_code), el("td", {}, Dash.ms(r.latency_ms)),
    el("td", {}, format(r.total_tokens)), el("td", {}, r.cache_status || ""))));
}

Dash.start(load, REFRESH_MS).then((run) => document.getElementById("window").addEventListener("change", run));
