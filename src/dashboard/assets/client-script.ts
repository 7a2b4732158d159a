/**
 * The dashboard's only JavaScript: confirmations for destructive buttons and the throughput chart
 * (uPlot, served by the dashboard itself). Pages work without it. A string, because it runs in the
 * browser, not in Node; served as /assets/dashboard.js (no inline scripts: the CSP forbids them).
 */
export const CLIENT_SCRIPT = `"use strict";
document.addEventListener("click", function (event) {
  var button = event.target instanceof Element ? event.target.closest("[data-confirm]") : null;
  if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
});
(function () {
  var box = document.getElementById("throughput-chart");
  if (!box || typeof uPlot === "undefined") return;
  var series = JSON.parse(box.getAttribute("data-series"));
  box.textContent = "";
  var opts = {
    width: box.clientWidth - 16,
    height: 240,
    tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
    scales: { x: { time: true } },
    axes: [
      { values: function (u, splits) { return splits.map(function (ts) { return new Date(ts * 1000).toISOString().slice(11, 16); }); } },
      { label: "attempts / min" },
    ],
    series: [
      { label: "minute (UTC)" },
      { label: "succeeded", stroke: "#1a7f46", fill: "rgba(26,127,70,0.08)", width: 1.5 },
      { label: "failed", stroke: "#b42318", fill: "rgba(180,35,24,0.10)", width: 1.5 },
    ],
  };
  var chart = new uPlot(opts, [series.t, series.succeeded, series.failed], box);
  window.addEventListener("resize", function () { chart.setSize({ width: box.clientWidth - 16, height: 240 }); });
})();
`;
