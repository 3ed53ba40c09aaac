// The billing chart: bars of fixed and variable costs per participant, drawn with uPlot from
// the figures in the element's data-billing attribute (the table below it has the same figures;
// without JavaScript the table is the whole page).
(function () {
  "use strict";
  var el = document.getElementById("billing-chart");
  if (!el || typeof uPlot === "undefined") return;
  var data = JSON.parse(el.getAttribute("data-billing"));
  if (!data.labels.length) return;
  var xs = data.labels.map(function (_, i) { return i; });
  var bars = uPlot.paths.bars({ size: [0.35, 60], align: 0 });
  var fmt = new Intl.NumberFormat(document.documentElement.lang || "ja");
  function width() { return Math.max(280, Math.min(el.parentElement.clientWidth, 900)); }
  var opts = {
    width: width(),
    height: 300,
    scales: { x: { time: false, range: [-0.5, data.labels.length - 0.5] } },
    axes: [
      { splits: function () { return xs; },
        values: function (_, splits) { return splits.map(function (i) { return data.labels[i] || ""; }); } },
      { values: function (_, splits) { return splits.map(function (v) { return fmt.format(v); }); }, size: 90 }
    ],
    series: [
      { label: "" },
      { label: el.getAttribute("data-fixed"), fill: "#1d4ed8", stroke: "#1d4ed8", paths: bars,
        points: { show: false }, value: function (_, v) { return v == null ? "—" : fmt.format(v); } },
      { label: el.getAttribute("data-variable"), fill: "#c2410c", stroke: "#c2410c",
        paths: uPlot.paths.bars({ size: [0.35, 60], align: 1 }), points: { show: false },
        value: function (_, v) { return v == null ? "—" : fmt.format(v); } }
    ],
    legend: { live: false }
  };
  var plot = new uPlot(opts, [xs, data.fixed, data.variable], el);
  window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 300 }); });
})();
