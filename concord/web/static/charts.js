// Draws each score chart from the JSON next to its canvas: the score over time, the
// instrument's severity bands shaded behind it, the baseline and any goal as lines.
(function () {
  "use strict";
  var shades = ["rgba(17,99,41,0.10)", "rgba(122,74,0,0.08)", "rgba(179,107,0,0.12)",
                "rgba(164,22,26,0.10)", "rgba(164,22,26,0.18)", "rgba(164,22,26,0.26)"];

  var bandsPlugin = {
    id: "concordBands",
    beforeDatasetsDraw: function (chart, args, options) {
      var area = chart.chartArea, y = chart.scales.y, ctx = chart.ctx;
      (options.bands || []).forEach(function (band, i) {
        var top = y.getPixelForValue(Math.min(band.to + 0.5, y.max));
        var bottom = y.getPixelForValue(Math.max(band.from - 0.5, y.min));
        ctx.save();
        ctx.fillStyle = shades[Math.min(i, shades.length - 1)];
        ctx.fillRect(area.left, top, area.right - area.left, bottom - top);
        ctx.fillStyle = "#4a5561";
        ctx.font = "12px system-ui, sans-serif";
        ctx.fillText(band.name, area.left + 4, top + 13);
        ctx.restore();
      });
    }
  };

  function line(value, label, color, dash, count) {
    var data = [];
    for (var i = 0; i < count; i++) { data.push(value); }
    return { label: label, data: data, borderColor: color, borderDash: dash, pointRadius: 0,
             borderWidth: 2, fill: false };
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || typeof Chart === "undefined") { return; }
    var d = JSON.parse(source.textContent);
    if (!d.points.length && !(d.imported || []).length) { canvas.parentNode.hidden = true; return; }
    var imported = d.imported || [];
    // One axis of dates for Concord's scores and the EHR's (imported), in date order.
    var days = {};
    d.points.concat(imported).forEach(function (p) { days[p.on || p.x] = p.x; });
    var order = Object.keys(days).sort();
    var labels = order.map(function (k) { return days[k]; });
    function at(points) {
      var by = {};
      points.forEach(function (p) { by[p.on || p.x] = p.y; });
      return order.map(function (k) { return k in by ? by[k] : null; });
    }
    var datasets = [{ label: d.label, data: at(d.points), spanGaps: true,
                      borderColor: "#0b5a7a", backgroundColor: "#0b5a7a", pointRadius: 4,
                      borderWidth: 3, tension: 0 }];
    if (imported.length) {
      datasets.push({ label: d.importedLabel, data: at(imported), showLine: false,
                      pointStyle: "rectRot", pointRadius: 6, borderColor: "#8a4b00",
                      backgroundColor: "#8a4b00" });
    }
    if (d.baseline !== null) {
      datasets.push(line(d.baseline, d.baselineLabel, "#4a5561", [6, 4], labels.length));
    }
    d.goals.forEach(function (g) {
      datasets.push(line(g.value, g.label, "#116329", [2, 3], labels.length));
    });
    new Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { min: d.min, max: d.max, ticks: { precision: 0 } },
                  x: { ticks: { autoSkip: true, maxRotation: 0 } } },
        // The legend's entries are short (the score, the baseline, "Goal: below 10") so they
        // wrap onto rows inside the box rather than being cut off at its edge.
        plugins: { concordBands: { bands: d.bands },
                   legend: { position: "bottom", labels: { boxWidth: 18, padding: 8 } } }
      },
      plugins: [bandsPlugin]
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
