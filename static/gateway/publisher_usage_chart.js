// The publisher's usage page: units per day of the meter picked in #usage-meter
// (requests first), from the json_script element #usage-daily
// (gateway.selectors.publisher_daily_by_meter). A meter shown per 1,000 units plots
// thousands, its axis titled "1K tokens"; tooltips and the total give exact units.
(function () {
  "use strict";
  const canvas = document.getElementById("publisher-usage-daily");
  if (!canvas) return;
  const data = JSON.parse(document.getElementById("usage-daily").textContent);
  const picker = document.getElementById("usage-meter");
  const head = document.getElementById("usage-chart-head");
  const title = head.querySelector("h3");
  const total = head.querySelector(".badge");
  const primary = (getComputedStyle(document.documentElement).getPropertyValue("--primary") || "#4f46e5").trim();
  function num(n) { return Number(n).toLocaleString("en-US"); }
  let meter = data.meters[0];
  const chart = new Chart(canvas, {
    type: "bar",
    data: { labels: data.labels, datasets: [{ label: meter.name, data: [], backgroundColor: primary, borderRadius: 3 }] },
    options: { animation: false, maintainAspectRatio: false,
      plugins: { legend: { display: false },
        tooltip: { callbacks: { label: (ctx) => meter.name + ": " +
          num(Math.round(ctx.parsed.y * meter.scale)) + " " + meter.plural } } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: false, text: "" } },
        x: { ticks: { maxTicksLimit: 15 } } } },
  });
  function show(key) {
    meter = data.meters.find((m) => m.key === key) || data.meters[0];
    const y = chart.options.scales.y;
    y.ticks.precision = meter.scale > 1 ? undefined : 0;
    y.title.display = meter.scale > 1;
    y.title.text = meter.scale_label + " " + meter.plural;
    chart.data.datasets[0].label = meter.name;
    chart.data.datasets[0].data = meter.counts.map((n) => n / meter.scale);
    chart.update();
    title.textContent = meter.name + " per day";
    canvas.setAttribute("aria-label", meter.name + " per day");
    total.textContent = num(meter.total) + " " + (meter.total === 1 ? meter.unit : meter.plural);
  }
  if (picker) {
    picker.value = meter.key;
    picker.addEventListener("change", () => show(picker.value));
  }
  show(meter.key);
})();
