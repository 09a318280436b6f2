// Draws each process measure's trend on the Quality page (Chart.js, vendored): the rate by
// month in per cent, from the JSON in #quality-trends; the table beside it has the numbers.
(function () {
  "use strict";
  function draw(canvas, trends) {
    var points = trends[canvas.getAttribute("data-quality-trend")] || [];
    if (!points.length || typeof Chart === "undefined") { canvas.parentNode.hidden = true; return; }
    new Chart(canvas, {
      type: "line",
      data: {
        labels: points.map(function (p) { return p.month; }),
        datasets: [{
          label: canvas.getAttribute("data-label"),
          data: points.map(function (p) { return p.rate === null ? null : Math.round(p.rate * 100); }),
          spanGaps: true, borderColor: "#0b5a7a", backgroundColor: "#0b5a7a", pointRadius: 4,
          borderWidth: 3, tension: 0
        }]
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { min: 0, max: 100, ticks: { precision: 0 } },
                  x: { ticks: { autoSkip: true, maxRotation: 0 } } },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 18, padding: 8 } } }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("quality-trends");
    if (!source) { return; }
    var trends = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-quality-trend]").forEach(function (c) { draw(c, trends); });
  });
})();
