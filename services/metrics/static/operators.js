// Draws the operators' page's charts with the vendored Chart.js (services/metrics/pages.py writes
// each chart as a canvas and a JSON data block). Numbers in Vietnamese: 5.932; 67,84 %.
"use strict";
(function () {
  if (typeof Chart === "undefined") return;  // not vendored yet: the tables still hold every figure
  const numbers = new Intl.NumberFormat("vi-VN", {maximumFractionDigits: 2});
  const shown = (value, unit) => numbers.format(value) + (unit ? " " + unit : "");

  function draw(canvas) {
    const spec = JSON.parse(document.getElementById(canvas.dataset.spec).textContent);
    const [values, categories] = spec.horizontal ? ["x", "y"] : ["y", "x"];
    if (spec.horizontal) {  // a bar's room whatever the count (through the CSSOM: the policy refuses style="")
      canvas.parentElement.style.height = Math.max(150, 30 * spec.labels.length + 70) + "px";
    }
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: spec.series.map((s) => ({label: s.name, data: s.values, backgroundColor: s.colors})),
      },
      options: {
        locale: "vi-VN",
        animation: false,
        maintainAspectRatio: false,
        indexAxis: categories,
        scales: {
          [values]: {beginAtZero: true, max: spec.max, stacked: !!spec.stacked,
                     ticks: {precision: 0, callback: (value) => shown(value, spec.unit)}},
          [categories]: {stacked: !!spec.stacked, ticks: {autoSkip: true}},
        },
        plugins: {
          legend: {display: spec.series.length > 1},
          tooltip: {callbacks: {label: (item) => `${item.dataset.label}: ${shown(item.parsed[values], spec.unit)}`}},
        },
      },
    });
    canvas.dataset.drawn = "true";
  }

  document.querySelectorAll("canvas[data-spec]").forEach(draw);
})();
