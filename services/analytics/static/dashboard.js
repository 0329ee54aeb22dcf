// The dashboard: reads /reports with the filters in the address, draws charts with Chart.js and
// tables, and links each report's CSV. When done it writes a marker (#render-status) that the
// browser test reads: how many charts were drawn and how many data points they hold.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("filters");
  const statusEl = document.getElementById("render-status");
  const charts = {};
  const palette = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477",
                   "#66aa00", "#b82e2e", "#316395", "#994499", "#22aa99"];

  function query() {
    const q = new URLSearchParams();
    for (const [k, v] of params) if (v) q.append(k, v);
    return q.toString();
  }

  function draw(name, type, labels, datasets, options) {
    if (charts[name]) charts[name].destroy();
    const el = document.getElementById("c-" + name);
    charts[name] = new Chart(el, {
      type: type,
      data: { labels: labels, datasets: datasets },
      options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
                               plugins: { legend: { display: datasets.length > 1 || type === "doughnut" } } },
                             options || {}),
    });
    return datasets.reduce((n, d) => n + d.data.filter((x) => x !== null && x !== 0).length, 0);
  }

  function bar(name, rows, label, value, title, horizontal) {
    return draw(name, "bar", rows.map((r) => r[label]),
                [{ label: title, data: rows.map((r) => r[value]), backgroundColor: palette[0] }],
                horizontal ? { indexAxis: "y" } : {});
  }

  function table(id, rows, limit) {
    const el = document.getElementById(id);
    el.replaceChildren();
    if (!rows.length) { el.innerHTML = "<tr><td>no data for these filters</td></tr>"; return; }
    const cols = [];
    rows.forEach((r) => Object.keys(r).forEach((k) => { if (!cols.includes(k)) cols.push(k); }));
    const head = el.insertRow();
    cols.forEach((c) => { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); });
    rows.slice(0, limit || 50).forEach((r) => {
      const tr = el.insertRow();
      cols.forEach((c) => {
        const td = tr.insertCell();
        const v = r[c];
        td.textContent = v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : v;
        if (typeof v === "number") td.className = "n";
      });
    });
  }

  const TILES = [["orders", "orders"], ["acceptance_rate", "acceptance rate", "%"],
    ["hold_rate", "hold rate", "%"], ["backorder_rate", "backorder rate", "%"],
    ["fill_rate", "fill rate", "%"], ["placed_to_shipped_p50_h", "placed→shipped p50", "h"],
    ["placed_to_shipped_p90_h", "placed→shipped p90", "h"], ["on_time_ship_rate", "shipped within SLA", "%"],
    ["on_time_delivery_rate", "delivered within promise", "%"], ["cost_per_parcel", "cost per parcel"],
    ["refunds_amount", "refunds"], ["average_rating", "average rating"],
    ["repeat_customer_rate", "repeat customers", "%"], ["held_now", "on hold now"],
    ["backordered_now", "backordered now"]];

  function tiles(summary) {
    const kpi = Object.fromEntries(summary.map((r) => [r.metric, r.value]));
    const el = document.getElementById("tiles");
    el.replaceChildren();
    TILES.forEach(([key, label, unit]) => {
      const v = kpi[key];
      const div = document.createElement("div");
      div.className = "tile";
      const b = document.createElement("b");
      b.textContent = v === null || v === undefined ? "–" : unit === "%" ? (v * 100).toFixed(1) + " %"
        : unit === "h" ? hours(v) : v;
      const s = document.createElement("span");
      s.textContent = label;
      div.append(b, s);
      el.appendChild(div);
    });
  }

  function hours(h) {
    if (h >= 48) return (h / 24).toFixed(1) + " d";
    if (h >= 1) return h.toFixed(1) + " h";
    if (h * 60 >= 1) return (h * 60).toFixed(1) + " min";
    return (h * 3600).toFixed(1) + " s";
  }

  async function options() {
    const res = await fetch("/reports/options");
    const opts = await res.json();
    for (const [name, values] of Object.entries(opts)) {
      const sel = form.elements[name];
      values.forEach((v) => { const o = document.createElement("option"); o.value = o.textContent = v; sel.appendChild(o); });
      if (params.get(name)) sel.value = params.get(name);
    }
    for (const name of ["from", "to"]) if (params.get(name)) form.elements[name].value = params.get(name);
  }

  async function render() {
    const q = query();
    const res = await fetch("/reports" + (q ? "?" + q : ""));
    if (!res.ok) throw new Error("reports: HTTP " + res.status);
    const r = (await res.json()).reports;
    document.querySelectorAll("a[data-csv]").forEach((a) => {
      a.href = "/reports/" + a.dataset.csv + ".csv" + (q ? "?" + q : "");
    });
    tiles(r.summary);
    let points = 0;
    points += draw("orders_by_day", "bar", r.orders_by_day.map((d) => d.day), [
      { label: "orders", data: r.orders_by_day.map((d) => d.orders), borderColor: palette[0], backgroundColor: palette[0] },
      { label: "sold", data: r.orders_by_day.map((d) => d.sold), borderColor: palette[3], backgroundColor: palette[3] }]);
    points += bar("orders_by_status", r.orders_by_status, "status", "orders", "orders");
    points += bar("rejection_reasons", r.rejection_reasons, "reason", "orders", "orders", true);
    points += bar("hold_reasons", r.hold_reasons, "reason", "orders", "orders", true);
    points += draw("carriers", "bar", r.carriers.map((c) => c.carrier + " " + c.service), [
      { label: "on-time delivery %", data: r.carriers.map((c) => c.on_time_delivery_rate === null ? null : c.on_time_delivery_rate * 100), backgroundColor: palette[3] },
      { label: "parcels", data: r.carriers.map((c) => c.parcels), backgroundColor: palette[0] }]);
    points += bar("best_sellers", r.best_sellers.slice(0, 15), "sku", "units", "units", true);
    points += draw("rfm_segments", "doughnut", r.rfm_segments.map((s) => s.segment),
                   [{ data: r.rfm_segments.map((s) => s.customers), backgroundColor: palette }]);
    points += bar("ratings", r.ratings, "rating", "orders", "orders");
    points += draw("returns_by_reason", "doughnut", r.returns_by_reason.map((s) => s.reason),
                   [{ data: r.returns_by_reason.map((s) => s.requests), backgroundColor: palette }]);
    table("t-carriers", r.carriers);
    table("t-best_sellers", r.best_sellers);
    table("t-returns_by_sku", r.returns_by_sku.filter((x) => x.returned > 0));
    table("t-pairs", r.pairs);
    table("t-cohorts", r.cohorts);
    table("t-refunds", r.refunds);
    table("t-summary", r.summary, 100);
    const orders = (r.summary.find((x) => x.metric === "orders") || {}).value || 0;
    statusEl.textContent = "rendered charts=" + Object.keys(charts).length + " points=" + points + " orders=" + orders;
    statusEl.dataset.rendered = "true";
    statusEl.dataset.charts = String(Object.keys(charts).length);
    statusEl.dataset.points = String(points);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    for (const name of ["from", "to", "store", "country", "warehouse", "carrier"]) {
      const v = form.elements[name].value;
      if (v) params.set(name, v); else params.delete(name);
    }
    history.replaceState(null, "", "?" + query());
    render().catch(fail);
  });

  document.getElementById("search").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const res = await fetch("/orders?" + new URLSearchParams({ [f.elements.by.value]: f.elements.q.value }),
                            { headers: { Authorization: "Bearer " + f.elements.token.value } });
    const body = await res.json();
    table("t-search", res.ok ? body.orders : [{ error: body.detail }]);
  });

  function fail(err) {
    statusEl.textContent = "error: " + err.message;
    statusEl.dataset.rendered = "error";
  }

  options().then(render).catch(fail);
})();
