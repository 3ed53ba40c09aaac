// Bar charts of the console (usage per participant, a billing run's costs): each element
// .chart[data-bars] holds its figures as JSON ({labels, <series key>: [...]}); data-series names
// the two series' keys, data-label-<key> their legend labels, data-axis the value axis width.
// The table below each chart has the same figures; without JavaScript the table is the page
// (the chart's <figure> comes hidden and is shown here, once there is a chart to show).
(function () {
  "use strict";
  if (typeof uPlot === "undefined") return;
  var COLOURS = ["#1d4ed8", "#c2410c"];
  var fmt = new Intl.NumberFormat(document.documentElement.lang || "ja");
  function value(_, v) { return v == null ? "—" : fmt.format(v); }
  document.querySelectorAll(".chart[data-bars]").forEach(function (el) {
    var data = JSON.parse(el.getAttribute("data-bars"));
    if (!data.labels.length) return;
    var keys = el.getAttribute("data-series").split(" ");
    var xs = data.labels.map(function (_, i) { return i; });
    function width() { return Math.max(280, Math.min(el.parentElement.clientWidth, 900)); }
    var series = [{ label: "" }].concat(keys.map(function (key, i) {
      return { label: el.getAttribute("data-label-" + key), fill: COLOURS[i], stroke: COLOURS[i],
               paths: uPlot.paths.bars({ size: [0.35, 60], align: i === 0 ? 0 : 1 }),
               points: { show: false }, value: value };
    }));
    var opts = {
      width: width(),
      height: 300,
      scales: { x: { time: false, range: [-0.5, data.labels.length - 0.5] } },
      axes: [
        { splits: function () { return xs; },
          values: function (_, splits) { return splits.map(function (i) { return data.labels[i] || ""; }); } },
        { values: function (_, splits) { return splits.map(function (v) { return fmt.format(v); }); },
          size: Number(el.getAttribute("data-axis")) || 70 }
      ],
      series: series,
      legend: { live: false }
    };
    var figure = el.closest("figure");
    if (figure) figure.hidden = false;      // before drawing: a hidden parent has no width
    var plot = new uPlot(opts, [xs].concat(keys.map(function (key) { return data[key]; })), el);
    window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 300 }); });
  });
})();
