// Draws the charts of a keel page: the Vega-Lite specs are a JSON data block
// (<script type="application/json" id="keel-charts">, never executed), each drawn by vegaEmbed
// in the element of the same id. Each chart's view is kept in window.keelViews[id] (tests, and
// people in the console, read its data). Used by the dashboard (/ui/static/charts.js) and
// inlined, unchanged, in the one-file reports.
"use strict";

function keelCharts() {
  window.keelViews = window.keelViews || {};
  const block = document.getElementById("keel-charts");
  if (!block) { return; }
  for (const [id, spec] of Object.entries(JSON.parse(block.textContent))) {
    vegaEmbed("#" + CSS.escape(id), spec, { actions: false })
      .then(r => { window.keelViews[id] = r.view; });
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", keelCharts);
} else {
  keelCharts();
}
