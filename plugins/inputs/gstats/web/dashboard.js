// gstats dashboard: polls api/stats and draws, per prefix, requests per
// second, requests in flight, responses per second by status class and the
// latency percentiles of the window, with uPlot.
//
// URL parameters: refresh=SECONDS between updates (default 2),
// history=SECONDS of history kept on the charts (default 300).
//
// For tests and scripts the page exposes what it draws as data attributes:
// <body data-state="ok|error|loading" data-polls="N">, and on each
// <section class="prefix" data-prefix="NAME" data-points="N"> one
// data-latest-* attribute per figure (data-latest-rate, -in-flight,
// -finished, -errors, -p50, -p99-9, ...); each <figure data-chart=...> has
// data-points (x values) and data-values (non-empty y values).
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const REFRESH_S = clamp(Number(params.get("refresh")) || 2, 0.25, 60);
  const HISTORY_S = clamp(Number(params.get("history")) || 300, 10, 3600);
  const MAX_POINTS = Math.ceil(HISTORY_S / REFRESH_S) + 1;
  const CHART_HEIGHT = 150;
  const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

  const els = {
    body: document.body,
    main: document.getElementById("prefixes"),
    empty: document.getElementById("empty"),
    emptyAddress: document.getElementById("empty-address"),
    status: document.getElementById("status"),
    template: document.getElementById("prefix-card"),
    version: document.getElementById("meta-version"),
    uptime: document.getElementById("meta-uptime"),
    window: document.getElementById("meta-window"),
    messages: document.getElementById("meta-messages"),
    updated: document.getElementById("meta-updated"),
  };

  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim() || "#888";

  /** @type {Map<string, PrefixView>} */
  const views = new Map();
  let polls = 0;

  // --- formatting -----------------------------------------------------------

  function clamp(v, lo, hi) {
    return Math.min(hi, Math.max(lo, v));
  }

  function num(v) {
    if (v == null || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  // duration writes seconds as "42 s", "10 min", "3 min 5 s", "2 h 7 min".
  function duration(seconds) {
    const s = Math.floor(seconds);
    const join = (a, unitA, b, unitB) => a + " " + unitA + (b ? " " + b + " " + unitB : "");
    if (s < 60) return s + " s";
    if (s < 3600) return join(Math.floor(s / 60), "min", s % 60, "s");
    if (s < 86400) return join(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "min");
    return join(Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h");
  }

  function clock(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }

  // --- charts ---------------------------------------------------------------

  // chartSpecs describes the four charts of a prefix; series() gives the
  // y series (label and colour), after the configured percentiles are known.
  function chartSpecs(percentiles) {
    return {
      rate: { unit: "/s", series: () => [{ label: "requests/s", stroke: color("--c-rate"), fill: color("--c-rate") + "22" }] },
      in_flight: { unit: "", integer: true, series: () => [{ label: "in flight", stroke: color("--c-inflight"), fill: color("--c-inflight") + "22" }] },
      status: { unit: "/s", series: () => CLASSES.map((c) => ({ label: c, stroke: color("--c-" + c) })) },
      latency: {
        unit: " ms",
        series: () => percentiles.map((p, i) => ({ label: p.key, stroke: color("--c-p" + (i % 6)) }))
          .concat([{ label: "mean", stroke: color("--muted"), dash: [4, 4] }]),
      },
    };
  }

  function makePlot(container, spec) {
    const axis = {
      stroke: color("--axis"),
      grid: { stroke: color("--grid"), width: 1 },
      ticks: { stroke: color("--grid"), width: 1 },
      font: "11px system-ui, sans-serif",
    };
    const yAxis = Object.assign({}, axis, { size: 56, values: (u, ticks) => ticks.map((v) => num(v) + spec.unit.trim()) });
    if (spec.integer) yAxis.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
    const opts = {
      width: Math.max(container.clientWidth, 200),
      height: CHART_HEIGHT,
      cursor: { points: { size: 6 } },
      legend: { live: false }, // a key: labels and colours only
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        Object.assign({}, axis, { space: 80, values: (u, ticks) => ticks.map(clock) }),
        yAxis,
      ],
      series: [{ label: "time" }].concat(spec.series().map((s) => ({
        label: s.label,
        stroke: s.stroke,
        fill: s.fill,
        dash: s.dash,
        width: 1.5,
        spanGaps: false,
        points: { show: false },
      }))),
    };
    const data = [[]].concat(opts.series.slice(1).map(() => []));
    return { plot: new uPlot(opts, data, container), data: data };
  }

  // --- one prefix -----------------------------------------------------------

  class PrefixView {
    constructor(name, percentiles) {
      this.name = name;
      this.percentiles = percentiles;
      this.last = null; // previous sample, for rates
      const node = els.template.content.firstElementChild.cloneNode(true);
      node.dataset.prefix = name;
      node.querySelector(".prefix-name").textContent = name === "" ? "default" : name;
      this.node = node;
      this.figures = this.makeFigures(node.querySelector(".figures"));
      this.charts = {};
      this.specs = chartSpecs(percentiles);
    }

    makeFigures(dl) {
      const list = [["rate", "req/s"], ["in_flight", "in flight"], ["finished", "finished"]]
        .concat(this.percentiles.map((p) => [p.key, p.key + " ms"]))
        .concat([["errors", "4xx+5xx"]]);
      const out = {};
      for (const [key, label] of list) {
        const div = document.createElement("div");
        const dt = document.createElement("dt");
        const dd = document.createElement("dd");
        dt.textContent = label;
        dd.textContent = "–";
        dd.dataset.figure = key;
        div.append(dt, dd);
        dl.append(div);
        out[key] = dd;
      }
      return out;
    }

    // attach creates the charts once the card is in the document (uPlot
    // needs the container's width).
    attach() {
      for (const fig of this.node.querySelectorAll("figure[data-chart]")) {
        const key = fig.dataset.chart;
        this.charts[key] = Object.assign(makePlot(fig.querySelector(".plot"), this.specs[key]), { figure: fig });
      }
    }

    // add appends one sample: st is the prefix's STATS entry, t the time.
    add(t, st) {
      const pt = st.processing_time || {};
      const last = this.last;
      const dt = last ? t - last.t : 0;
      const reset = last && (st.finished < last.finished || st.started < last.started);
      const perSecond = (now, before) => (last && !reset && dt > 0 ? Math.max(0, now - before) / dt : null);

      const rate = perSecond(st.finished, last && last.finished);
      const classes = CLASSES.map((c) => perSecond(st.status[c], last && last.status[c]));
      const hasLatency = pt.count > 0;
      const latency = this.percentiles.map((p) => (hasLatency ? pt[p.key] : null))
        .concat([hasLatency ? pt.avg : null]);

      this.push("rate", t, [rate]);
      this.push("in_flight", t, [st.in_flight]);
      this.push("status", t, classes);
      this.push("latency", t, latency);
      this.last = { t: t, finished: st.finished, started: st.started, status: Object.assign({}, st.status) };

      const errors = (st.status["4xx"] || 0) + (st.status["5xx"] || 0);
      const figures = {
        rate: rate == null ? st.rate : rate,
        in_flight: st.in_flight,
        finished: st.finished,
        errors: errors,
      };
      this.percentiles.forEach((p) => { figures[p.key] = hasLatency ? pt[p.key] : null; });
      for (const [key, dd] of Object.entries(this.figures)) {
        const v = figures[key];
        dd.textContent = num(v);
        // data-latest-rate, data-latest-in-flight, data-latest-p99-9, ...
        this.node.setAttribute("data-latest-" + key.toLowerCase().replace(/[^a-z0-9]+/g, "-"), v == null ? "" : String(v));
      }
      this.node.dataset.points = String(this.charts.rate.data[0].length);
    }

    push(key, t, ys) {
      const c = this.charts[key];
      c.data[0].push(t);
      ys.forEach((y, i) => c.data[i + 1].push(y == null || !isFinite(y) ? null : y));
      if (c.data[0].length > MAX_POINTS) c.data.forEach((s) => s.shift());
      c.plot.setData(c.data);
      let values = 0;
      for (let i = 1; i < c.data.length; i++) values += c.data[i].filter((v) => v != null).length;
      c.figure.dataset.points = String(c.data[0].length);
      c.figure.dataset.values = String(values);
      const first = c.data[1];
      c.figure.dataset.latest = first.length && first[first.length - 1] != null ? String(first[first.length - 1]) : "";
    }

    resize() {
      for (const c of Object.values(this.charts)) {
        c.plot.setSize({ width: Math.max(c.figure.querySelector(".plot").clientWidth, 200), height: CHART_HEIGHT });
      }
    }
  }

  // --- polling --------------------------------------------------------------

  function setStatus(state, text) {
    els.body.dataset.state = state;
    els.status.textContent = text;
  }

  function update(data) {
    els.version.textContent = data.version;
    els.uptime.textContent = duration(data.uptime_seconds);
    els.window.textContent = duration(data.window_seconds);
    els.messages.textContent = num(data.accepted) + " accepted, " + num(data.rejected) + " rejected";
    els.updated.textContent = clock(data.time);
    els.emptyAddress.textContent = data.stats_address || "the stats address";

    const names = Object.keys(data.prefixes).sort();
    for (const [name, view] of views) {
      if (!(name in data.prefixes)) { // forgotten by a RESET
        view.node.remove();
        views.delete(name);
      }
    }
    for (const name of names) {
      let view = views.get(name);
      if (!view) {
        view = new PrefixView(name, data.percentiles);
        views.set(name, view);
        insertSorted(view);
        view.attach();
      }
      view.add(data.time, data.prefixes[name]);
    }
    els.empty.hidden = views.size > 0;
  }

  // insertSorted puts a new card before the first card with a later name.
  function insertSorted(view) {
    let before = null;
    for (const other of views.values()) {
      if (other !== view && other.name > view.name && (!before || other.name < before.name)) before = other;
    }
    els.main.insertBefore(view.node, before ? before.node : null);
  }

  async function poll() {
    try {
      const resp = await fetch("api/stats", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!resp.ok) {
        throw new Error("HTTP " + resp.status + ": " + (await resp.text()).trim().slice(0, 200));
      }
      update(await resp.json());
      polls++;
      els.body.dataset.polls = String(polls);
      setStatus("ok", "live, every " + REFRESH_S + " s");
    } catch (err) {
      setStatus("error", "no data: " + err.message);
    } finally {
      window.setTimeout(poll, REFRESH_S * 1000);
    }
  }

  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => views.forEach((v) => v.resize()), 150);
  });

  poll();
})();
