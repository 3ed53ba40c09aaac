// The KPI dashboard's small line charts, drawn with uPlot from each figure's data-kpi attribute
// ({months: [...], series: [{label, values}]}). The table after each chart holds the same
// figures; without JavaScript the tables are the whole page.
(function () {
  "use strict";
  if (typeof uPlot === "undefined") return;
  var colours = ["#1d4ed8", "#c2410c", "#047857", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d"];
  var fmt = new Intl.NumberFormat(document.documentElement.lang || "ja");
  var charts = document.querySelectorAll("[data-kpi]");
  Array.prototype.forEach.call(charts, function (el) {
    var data = JSON.parse(el.getAttribute("data-kpi"));
    if (!data.months.length) return;
    var xs = data.months.map(function (_, i) { return i; });
    function width() { return Math.max(240, Math.min(el.parentElement.clientWidth, 640)); }
    var every = Math.max(1, Math.ceil(data.months.length / 6));
    var series = [{ label: "" }].concat(data.series.map(function (s, i) {
      var c = colours[i % colours.length];
      return { label: s.label, stroke: c, width: 2, points: { show: data.months.length <= 24, fill: c },
               value: function (_, v) { return v == null ? "—" : fmt.format(v); } };
    }));
    var opts = {
      width: width(),
      height: 200,
      scales: { x: { time: false, range: [-0.3, Math.max(0.3, data.months.length - 0.7)] },
                y: { range: function (_, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } } },
      axes: [
        { splits: function () { return xs.filter(function (i) { return i % every === 0; }); },
          values: function (_, splits) { return splits.map(function (i) { return data.months[i] || ""; }); } },
        { values: function (_, splits) { return splits.map(function (v) { return fmt.format(v); }); }, size: 60 }
      ],
      series: series,
      legend: { live: false }
    };
    var plot = new uPlot(opts, [xs].concat(data.series.map(function (s) { return s.values; })), el);
    window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 200 }); });
  });
})();
