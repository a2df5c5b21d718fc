// The publisher's usage page: requests per day (templates/gateway/publisher_usage.html,
// data in the json_script elements #usage-labels and #usage-counts).
(function () {
  "use strict";
  const canvas = document.getElementById("publisher-usage-daily");
  if (!canvas) return;
  const labels = JSON.parse(document.getElementById("usage-labels").textContent);
  const counts = JSON.parse(document.getElementById("usage-counts").textContent);
  const primary = (getComputedStyle(document.documentElement).getPropertyValue("--primary") || "#4f46e5").trim();
  new Chart(canvas, {
    type: "bar",
    data: { labels: labels, datasets: [{ label: "Requests", data: counts, backgroundColor: primary, borderRadius: 3 }] },
    options: { animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { maxTicksLimit: 15 } } } },
  });
})();
