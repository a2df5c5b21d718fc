// Draws and refreshes every usage chart on the page (templates/gateway/_usage_chart.html):
// requests, then a block per other meter of the API (tokens, credits…), made from the
// data the first time it lists the meter.
(function () {
  "use strict";
  if (window.apimonUsageCharts) { window.apimonUsageCharts.scan(); return; }
  const POLL_MS = 5000;
  const css = getComputedStyle(document.documentElement);
  const primary = (css.getPropertyValue("--primary") || "#4f46e5").trim();
  const danger = (css.getPropertyValue("--danger") || "#dc2626").trim();

  // 10,000 like the rest of the page (the server formats with intcomma).
  function num(n) { return Number(n).toLocaleString("en-US"); }

  // `unit`: {label: "Requests", plural: "requests", scale: 1, scaleLabel: "1"}. A meter
  // shown per 1,000 units plots thousands (its axis says so); tooltips give the units.
  function chart(canvas, quotaLine, unit) {
    const datasets = [{ label: unit.label, data: [], backgroundColor: primary, borderRadius: 3 }];
    if (quotaLine) {
      datasets.push({ label: "Quota", data: [], type: "line", borderColor: danger,
        borderDash: [6, 4], pointRadius: 0, borderWidth: 2, fill: false });
    }
    const y = { beginAtZero: true, ticks: { precision: unit.scale > 1 ? undefined : 0 } };
    if (unit.scale > 1) y.title = { display: true, text: unit.scaleLabel + " " + unit.plural };
    return new Chart(canvas, {
      type: "bar",
      data: { labels: [], datasets: datasets },
      options: { animation: false, maintainAspectRatio: false,
        scales: { y: y, x: { ticks: { maxTicksLimit: 12 } } },
        plugins: { legend: { display: !!quotaLine },
          tooltip: { callbacks: { label: (ctx) => ctx.dataset.label + ": " +
            num(Math.round(ctx.parsed.y * unit.scale)) + " " + unit.plural } } } },
    });
  }

  function fill(c, series, limit, scale) {
    c.data.labels = series.labels;
    c.data.datasets[0].data = series.counts.map((n) => n / scale);
    if (c.data.datasets[1]) c.data.datasets[1].data = series.labels.map(() => limit / scale);
    c.update();
  }

  function quotaText(q, plural) {
    if (!q) return plural === "requests" ? "This tier has no quota." : "No quota on " + plural + ".";
    const end = new Date(q.end).toISOString().slice(0, 16).replace("T", " ");
    return num(q.used) + " of " + num(q.limit) + " " + plural + " " + q.unit_label + " used (" + q.percent +
      " %). The window ends " + end + " UTC." + (q.stop ? "" : " Overage is allowed.");
  }

  function showQuota(el, q, plural) {
    el.innerHTML = "";
    const p = document.createElement("p");
    p.className = "small";
    p.textContent = quotaText(q, plural);
    el.appendChild(p);
    if (!q) return;
    const bar = document.createElement("div");
    bar.className = "quota-bar";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", q.percent);
    // Through the CSSOM: the CSP refuses style attributes in markup.
    const level = document.createElement("span");
    level.style.width = Math.min(q.percent, 100) + "%";
    bar.appendChild(level);
    if (q.percent >= 100) bar.classList.add("full"); else if (q.percent >= 80) bar.classList.add("high");
    el.appendChild(bar);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function canvasBlock(title, range, attr, label) {
    const box = el("div");
    const h = el("h4", null, title + " ");
    h.appendChild(el("span", "muted small", range));
    const wrap = el("div", "chart-240");
    const canvas = el("canvas");
    canvas.setAttribute(attr, "");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label);
    wrap.appendChild(canvas);
    box.append(h, wrap);
    return [box, canvas];
  }

  // A meter's block: its name, use this period, quota, and its two charts.
  function meterBlock(container, m) {
    const plural = m.unit_label + "s";
    const unit = { label: m.name, plural: plural, scale: m.scale, scaleLabel: m.scale_label };
    const block = el("div", "usage-meter mt-1");
    block.dataset.meter = m.key;
    block.appendChild(el("h3", "m-0", m.name));
    const period = el("p", "small");
    period.setAttribute("data-meter-period", "");
    const quota = el("div", "usage-quota");
    quota.setAttribute("data-meter-quota", "");
    const grid = el("div", "grid two");
    const [hBox, hCanvas] = canvasBlock("Per hour", "(last 48 h)", "data-meter-hourly", m.name + " per hour");
    const [dBox, dCanvas] = canvasBlock("Per day", "(last 30 days, UTC)", "data-meter-daily", m.name + " per day");
    grid.append(hBox, dBox);
    block.append(period, quota, grid);
    container.appendChild(block);
    const q = m.quota;
    const limit = q ? q.limit : 0, qUnit = q ? q.unit : "";
    return {
      plural: plural, unit: unit, period: period, quota: quota, limit: limit,
      hourly: chart(hCanvas, limit && qUnit === "hour", unit),
      daily: chart(dCanvas, limit && qUnit === "day", unit),
    };
  }

  function setup(root) {
    if (root.dataset.ready) return;
    root.dataset.ready = "1";
    const unit = root.dataset.quotaUnit, limit = Number(root.dataset.quotaLimit || 0);
    const requests = { label: "Requests", plural: "requests", scale: 1, scaleLabel: "1" };
    const hourly = chart(root.querySelector("[data-usage-hourly]"), limit && unit === "hour", requests);
    const daily = chart(root.querySelector("[data-usage-daily]"), limit && unit === "day", requests);
    const fresh = root.querySelector("[data-usage-fresh]");
    const quota = root.querySelector("[data-usage-quota]");
    const meterBox = root.querySelector("[data-usage-meters]");
    const meters = {};
    async function refresh() {
      try {
        const r = await fetch(root.dataset.usageUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!r.ok) throw new Error(r.status);
        const data = await r.json();
        fill(hourly, data.hourly, limit, 1);
        fill(daily, data.daily, limit, 1);
        showQuota(quota, data.quota, "requests");
        for (const m of data.meters || []) {
          if (!meterBox) break;
          const b = meters[m.key] || (meters[m.key] = meterBlock(meterBox, m));
          fill(b.hourly, m.hourly, b.limit, m.scale);
          fill(b.daily, m.daily, b.limit, m.scale);
          b.period.textContent = num(m.period) + " " + b.plural + " this billing period.";
          showQuota(b.quota, m.quota, b.plural);
        }
        // In UTC, like every other time on the page.
        fresh.textContent = "Updated " + new Date(data.generated_at).toISOString().slice(11, 19) + " UTC";
      } catch (e) {
        fresh.textContent = "Could not refresh (" + e.message + "), retrying…";
      }
    }
    refresh();
    setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
  }

  window.apimonUsageCharts = { scan: () => document.querySelectorAll(".usage-chart").forEach(setup) };
  window.apimonUsageCharts.scan();
})();
