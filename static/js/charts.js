/* The Resources tab's charts: samples from series.json, drawn by Chart.js (static/vendor/chart.umd.js).
 *
 * The x axis is linear in milliseconds (no date adapter needed); labels are formatted here.
 * The range buttons fetch another range without reloading the page. The container's limits (RAM, swap,
 * CPU, processes, disk) are drawn as dashed lines: red for a hard limit, orange for a soft one.
 */
(function () {
  "use strict";
  const root = document.getElementById("resource-charts");
  if (!root || !window.Chart) return;
  const status = document.getElementById("chart-status");
  const jsonLink = document.getElementById("series-json");
  const charts = {};

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
  function bytes(v) {
    if (v === null || v === undefined || isNaN(v)) return "-";
    let i = 0;
    let n = Math.abs(v);
    while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i += 1; }
    const shown = i === 0 ? (Number.isInteger(n) ? n : n.toFixed(1)) : n.toFixed(n < 10 ? 1 : 0);
    return (v < 0 ? "-" : "") + shown + " " + UNITS[i];
  }
  const rate = (v) => bytes(v) + "/s";
  const pct = (v) => (v === null || v === undefined ? "-" : (+v).toFixed(1) + " %");
  const plain = (v) => (v === null || v === undefined ? "-" : String(Math.round(v * 10) / 10));

  const pad = (n) => String(n).padStart(2, "0");
  function timeLabel(ms, seconds) {
    const d = new Date(ms);
    const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    const md = pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    if (seconds <= 86400) return hm;
    if (seconds <= 7 * 86400) return md + " " + hm;
    if (seconds <= 31 * 86400) return md;
    return d.getFullYear() + "-" + md;
  }
  const fullTime = (ms) => {
    const d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  };

  // canvas id -> the value formatter, the y axis' suggested maximum and the datasets
  // (field, label, colour, only if the field has values).
  const SPECS = {
    "chart-cpu": {fmt: pct, max: 1, sets: [["cpu_pct", "CPU %", "#0d6efd"], ["cpu_pct_max", "peak", "#9ec5fe", true]]},
    "chart-mem": {fmt: bytes, max: 1024 * 1024, sets: [["mem_bytes", "memory", "#198754"], ["swap_bytes", "swap", "#fd7e14"]]},
    "chart-nproc": {fmt: plain, max: 1, sets: [["nproc", "processes", "#6f42c1"]]},
    "chart-net": {fmt: rate, max: 1024, sets: [["net_rx_bps", "in", "#20c997"], ["net_tx_bps", "out", "#d63384"]]},
    "chart-diskio": {fmt: rate, max: 1024, sets: [["disk_read_bps", "read", "#0dcaf0"], ["disk_write_bps", "write", "#dc3545"]]},
    "chart-diskused": {fmt: bytes, max: 1024 * 1024, sets: [["disk_used", "space used", "#6c757d"]]},
  };

  // A limit (series.json's "limits": the container's settings now) as a dashed level line across the range.
  function limitLine(limit, spec, from, to) {
    const colour = limit.hard ? "#dc3545" : "#fd7e14";
    return {
      label: `${limit.label} ${spec.fmt(limit.value)}`,
      isLimit: true,
      borderColor: colour,
      backgroundColor: colour,
      borderWidth: 1.5,
      borderDash: limit.hard ? [6, 4] : [2, 3],
      pointRadius: 0,
      pointHitRadius: 0,
      fill: false,
      data: [{x: from, y: limit.value}, {x: to, y: limit.value}],
    };
  }

  function draw(id, spec, points, range) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    const seconds = range.seconds;
    const now = Date.parse(range.now);
    const fields = spec.sets.map(([field]) => field);
    const limits = (range.limits || []).filter((limit) => fields.includes(limit.field))
      .map((limit) => limitLine(limit, spec, now - seconds * 1000, now));
    const datasets = spec.sets
      // The "peak" line only where the tier keeps maxima (consolidated tiers).
      .filter(([field, , , onlyIfPresent]) => !onlyIfPresent || points.some((p) => p[field] !== null && p[field] !== undefined))
      .map(([field, label, colour]) => ({
        label: label,
        borderColor: colour,
        backgroundColor: colour + "33",
        borderWidth: 1.5,
        pointRadius: points.length > 60 ? 0 : 2,  // few points (a new container): show them
        tension: 0,
        spanGaps: false,
        data: points.map((p) => ({x: p.ms, y: p[field] === undefined ? null : p[field]})),
      }))
      .concat(limits);
    const old = Chart.getChart(canvas);
    if (old) old.destroy();
    charts[id] = new Chart(canvas, {
      type: "line",
      data: {datasets: datasets},
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: {mode: "index", intersect: false},
        scales: {
          x: {type: "linear", min: now - seconds * 1000, max: now,
              ticks: {maxTicksLimit: 7, callback: (v) => timeLabel(v, seconds)}},
          // suggestedMax: an empty or all-zero chart keeps a sensible scale.
          y: {min: 0, suggestedMax: spec.max, ticks: {maxTicksLimit: 6, callback: (v) => spec.fmt(v)}},
        },
        plugins: {
          legend: {display: datasets.length > 1, labels: {boxWidth: 12}},
          tooltip: {filter: (item) => !item.dataset.isLimit, callbacks: {
            title: (items) => (items.length ? fullTime(items[0].parsed.x) : ""),
            label: (item) => item.dataset.label + ": " + spec.fmt(item.parsed.y),
          }},
        },
      },
    });
  }

  let current = null;
  async function load(rangeName) {
    current = rangeName;
    status.textContent = "Loading…";
    for (const a of root.querySelectorAll("#range-selector [data-range]")) {
      a.classList.toggle("active", a.dataset.range === rangeName);
    }
    const url = root.dataset.seriesUrl + "?range=" + encodeURIComponent(rangeName);
    if (jsonLink) jsonLink.href = url;
    let data;
    try {
      const response = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      data = await response.json();
      if (!response.ok) throw new Error(data.error || response.statusText);
    } catch (err) {
      status.textContent = "Could not load the samples: " + err.message;
      return;
    }
    if (current !== rangeName) return; // another range was chosen meanwhile
    const points = data.points.map((p) => Object.assign({ms: Date.parse(p.t)}, p));
    for (const [id, spec] of Object.entries(SPECS)) draw(id, spec, points, data);
    status.textContent = points.length
      ? points.length + " samples, one per " + (data.step >= 3600 ? data.step / 3600 + " h" : data.step >= 60 ? data.step / 60 + " min" : data.step + " s")
      : "No samples in this range yet: the agent samples running containers.";
  }

  root.addEventListener("click", (event) => {
    const link = event.target.closest("#range-selector [data-range]");
    if (!link) return;
    event.preventDefault();
    const params = new URLSearchParams(window.location.search);
    params.set("tab", "resources");
    params.set("range", link.dataset.range);
    window.history.replaceState(null, "", "?" + params.toString());
    load(link.dataset.range);
  });

  load(root.dataset.range || "hour");
})();
