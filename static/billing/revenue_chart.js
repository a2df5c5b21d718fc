// The revenue page: net revenue and platform fee per month, one chart per currency
// (templates/billing/publisher_revenue.html, data in the json_script #revenue-series).
(function () {
  "use strict";
  const source = document.getElementById("revenue-series");
  if (!source) return;
  const series = JSON.parse(source.textContent);
  const style = getComputedStyle(document.documentElement);
  const primary = (style.getPropertyValue("--primary") || "#4f46e5").trim();
  const muted = (style.getPropertyValue("--muted") || "#9ca3af").trim();
  const decimals = { jpy: 0, krw: 0, bhd: 3, kwd: 3, jod: 3, omr: 3, tnd: 3 };
  document.querySelectorAll("canvas.revenue-chart").forEach(function (canvas) {
    const currency = canvas.dataset.currency;
    const data = series[currency];
    const scale = Math.pow(10, decimals[currency] === undefined ? 2 : decimals[currency]);
    const major = (values) => values.map((v) => v / scale);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.months,
        datasets: [
          { label: "Net", data: major(data.net), backgroundColor: primary, borderRadius: 3 },
          { label: "Platform fee", data: major(data.fee), backgroundColor: muted, borderRadius: 3 },
        ],
      },
      options: {
        animation: false, maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
        plugins: { tooltip: { callbacks: { label: (c) => c.dataset.label + ": " + c.parsed.y.toLocaleString(undefined, { style: "currency", currency: currency.toUpperCase() }) } } },
      },
    });
  });
})();
