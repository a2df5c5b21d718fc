// Draws and refreshes every usage chart on the page (templates/gateway/_usage_chart.html).
(function () {
  "use strict";
  if (window.apimonUsageCharts) { window.apimonUsageCharts.scan(); return; }
  const POLL_MS = 5000;
  const css = getComputedStyle(document.documentElement);
  const primary = (css.getPropertyValue("--primary") || "#4f46e5").trim();
  const danger = (css.getPropertyValue("--danger") || "#dc2626").trim();

  function chart(canvas, quotaLine) {
    const datasets = [{ label: "Requests", data: [], backgroundColor: primary, borderRadius: 3 }];
    if (quotaLine) {
      datasets.push({ label: "Quota", data: [], type: "line", borderColor: danger,
        borderDash: [6, 4], pointRadius: 0, borderWidth: 2, fill: false });
    }
    return new Chart(canvas, {
      type: "bar",
      data: { labels: [], datasets: datasets },
      options: { animation: false, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { maxTicksLimit: 12 } } },
        plugins: { legend: { display: !!quotaLine } } },
    });
  }

  function fill(c, series, limit) {
    c.data.labels = series.labels;
    c.data.datasets[0].data = series.counts;
    if (c.data.datasets[1]) c.data.datasets[1].data = series.labels.map(() => limit);
    c.update();
  }

  // 10,000 like the rest of the page (the server formats with intcomma).
  function num(n) { return Number(n).toLocaleString("en-US"); }

  function quotaText(q) {
    if (!q) return "This tier has no quota.";
    const end = new Date(q.end).toISOString().slice(0, 16).replace("T", " ");
    return num(q.used) + " of " + num(q.limit) + " requests " + q.unit_label + " used (" + q.percent +
      " %). The window ends " + end + " UTC." + (q.stop ? "" : " Overage is allowed.");
  }

  function setup(root) {
    if (root.dataset.ready) return;
    root.dataset.ready = "1";
    const unit = root.dataset.quotaUnit, limit = Number(root.dataset.quotaLimit || 0);
    const hourly = chart(root.querySelector("[data-usage-hourly]"), limit && unit === "hour");
    const daily = chart(root.querySelector("[data-usage-daily]"), limit && unit === "day");
    const fresh = root.querySelector("[data-usage-fresh]");
    const quota = root.querySelector("[data-usage-quota]");
    async function refresh() {
      try {
        const r = await fetch(root.dataset.usageUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!r.ok) throw new Error(r.status);
        const data = await r.json();
        fill(hourly, data.hourly, limit);
        fill(daily, data.daily, limit);
        const q = data.quota;
        quota.innerHTML = "";
        const p = document.createElement("p");
        p.className = "small";
        p.textContent = quotaText(q);
        quota.appendChild(p);
        if (q) {
          const bar = document.createElement("div");
          bar.className = "quota-bar";
          bar.setAttribute("role", "progressbar");
          bar.setAttribute("aria-valuenow", q.percent);
          // Through the CSSOM: the CSP refuses style attributes in markup.
          const level = document.createElement("span");
          level.style.width = Math.min(q.percent, 100) + "%";
          bar.appendChild(level);
          if (q.percent >= 100) bar.classList.add("full"); else if (q.percent >= 80) bar.classList.add("high");
          quota.appendChild(bar);
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
