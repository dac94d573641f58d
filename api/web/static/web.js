// The web view's client: polls the JSON routes and redraws tables and ECharts charts.
// Everything is served by the app itself (no CDN). Times are shown in Asia/Shanghai.
(function () {
  "use strict";
  var CARRIERS = {
    grid_import: "电网购电 grid import", grid_export: "上网电量 grid export",
    onsite_renewable: "现场可再生 on-site renewable", natural_gas: "天然气 natural gas",
    heat: "外购热力 purchased heat", diesel: "柴油 diesel", gasoline: "汽油 gasoline",
    lpg: "液化石油气 LPG", water: "水 water", waste_heat: "余热 waste heat",
    ev_charging: "充电桩 EV charging", it_load: "IT 负载 IT load"
  };
  var TIME = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  var HOUR = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hour12: false
  });

  function num(x, digits) {
    if (x === null || x === undefined) return "–";
    return Number(x).toLocaleString("en-US", {maximumFractionDigits: digits === undefined ? 1 : digits});
  }
  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(0) + " %"; }
  function when(s) { return s ? TIME.format(new Date(s)) : "–"; }
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c];
    });
  }
  function stamp(now) {
    var el = document.getElementById("updated");
    var n = Number(el.getAttribute("data-updates")) + 1;
    el.setAttribute("data-updates", String(n));
    el.textContent = "更新于 updated " + when(now);
  }
  function fail(err) {
    var el = document.getElementById("updated");
    el.textContent = "连接失败，重试中 · fetch failed, retrying (" + err + ")";
  }
  function poll(url, pollS, render) {
    function tick() {
      fetch(url, {cache: "no-store"}).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (data) { render(data); stamp(data.now); })
        .catch(fail).finally(function () { setTimeout(tick, pollS * 1000); });
    }
    tick();
  }
  function chart(id) {
    var el = document.getElementById(id);
    var c = echarts.getInstanceByDom(el) || echarts.init(el, null, {renderer: "canvas"});
    window.addEventListener("resize", function () { c.resize(); });
    return c;
  }

  function startOverview(pollS) {
    var c = chart("overview-chart");
    poll("/web/api/overview", pollS, function (data) {
      var rows = data.sites.map(function (s) {
        var vs = s.vs_typical, mt = s.mtd_vs_target;
        return "<tr data-site=\"" + esc(s.site_id) + "\">" +
          "<td><a href=\"/web/site/" + encodeURIComponent(s.site_id) + "\">" + esc(s.name) +
          "</a> <span class=\"muted\">" + esc(s.site_id) + "</span></td>" +
          "<td class=\"text\">" + esc(s.site_type) + "</td><td class=\"text\">" + esc(s.city) + "</td>" +
          "<td>" + num(s.location_kgco2) + "</td><td>" + num(s.typical_kgco2) + "</td>" +
          "<td class=\"" + (vs > 1.1 ? "bad" : "") + "\">" + pct(vs) + "</td>" +
          "<td>" + num(s.mtd_kgco2) + "</td><td>" + num(s.target_to_date_kgco2) + "</td>" +
          "<td class=\"" + (mt > 1 ? "bad" : (mt ? "good" : "")) + "\">" + pct(mt) + "</td>" +
          "<td class=\"" + (s.completeness !== null && s.completeness < 0.9 ? "bad" : "") + "\">" +
          pct(s.completeness) + "</td></tr>";
      });
      document.querySelector("#sites tbody").innerHTML = rows.join("");
      c.setOption({
        animation: false,
        title: {text: "今日排放 Emissions today (kgCO2)", textStyle: {fontSize: 13}},
        tooltip: {trigger: "axis"},
        legend: {top: 0, right: 10},
        grid: {left: 60, right: 20, top: 40, bottom: 60},
        xAxis: {type: "category", data: data.sites.map(function (s) { return s.site_id; }),
                axisLabel: {rotate: 20}},
        yAxis: {type: "value", name: "kgCO2"},
        series: [
          {name: "今日 today (location)", type: "bar",
           data: data.sites.map(function (s) { return s.location_kgco2; })},
          {name: "典型 typical", type: "bar",
           data: data.sites.map(function (s) { return s.typical_kgco2; })}
        ]
      });
    });
  }

  function startSite(siteId, pollS) {
    var c = chart("carrier-chart");
    poll("/web/api/site/" + encodeURIComponent(siteId), pollS, function (data) {
      document.getElementById("site-title").innerHTML = esc(data.site.name) +
        " <span>" + esc(data.site.site_id) + " · " + esc(data.site.city) + "</span>";
      var hours = data.hours.map(function (h) { return HOUR.format(new Date(h)); });
      var series = Object.keys(data.carriers).sort().map(function (k) {
        return {name: CARRIERS[k] || k, type: "line", stack: "total", areaStyle: {},
                symbolSize: 6, showAllSymbol: true, connectNulls: false, data: data.carriers[k]};
      });
      c.setOption({
        animation: false, tooltip: {trigger: "axis"}, legend: {top: 0},
        grid: {left: 60, right: 20, top: 40, bottom: 30},
        xAxis: {type: "category", data: hours, boundaryGap: false},
        yAxis: {type: "value", name: "kgCO2"}, series: series
      }, {replaceMerge: ["series"]});
      document.querySelector("#meters tbody").innerHTML = data.meters.map(function (m) {
        var status = m.offline ? "<span class=\"bad\">离线 offline · 修复期限 repair by " +
          when(m.repair_due) + "</span>" : "<span class=\"good\">在线 online</span>";
        return "<tr data-meter=\"" + esc(m.meter_id) + "\">" +
          "<td style=\"padding-left:" + (8 + 18 * m.depth) + "px\">" + esc(m.meter_id) + "</td>" +
          "<td class=\"text\">" + esc(CARRIERS[m.carrier] || m.carrier) + "</td>" +
          "<td class=\"text\">" + esc(m.group_name || "") + "</td>" +
          "<td>" + num(m.quantity, 2) + " " + esc(m.unit) + "</td>" +
          "<td>" + num(m.children_quantity, 2) + "</td>" +
          "<td>" + num(m.unmetered_quantity, 2) + "</td>" +
          "<td class=\"last-value\">" + num(m.last_value, 3) + "</td>" +
          "<td>" + when(m.last_reading_at) + "</td><td class=\"text\">" + status + "</td></tr>";
      }).join("");
      var alerts = data.alerts.map(function (a) {
        return "<li class=\"" + (a.state === "firing" ? "bad" : "") + "\">" + esc(a.severity) +
          " · " + esc(a.kind) + " · " + esc(a.subject) + "（" + esc(a.state) + " 自 since " +
          when(a.since) + (a.deadline ? "，期限 due " + when(a.deadline) : "") + "）</li>";
      }).concat(data.meters.filter(function (m) { return m.offline; }).map(function (m) {
        return "<li class=\"bad\">表计离线 meter offline: " + esc(m.meter_id) +
          "（最后读数 last reading " + when(m.last_reading_at) + "）</li>";
      })).concat(data.rejections.map(function (r) {
        return "<li>拒收 rejected: " + esc(r.code) + " × " + r.n + " — " + esc(r.sample) + "</li>";
      }));
      document.getElementById("alerts").innerHTML = alerts.length ? alerts.join("") :
        "<li class=\"good\">无告警 no alerts</li>";
    });
  }

  function startScorecard(siteId, pollS) {
    // the scorecard changes slowly: every 12 polls of the page
    poll("/web/api/site/" + encodeURIComponent(siteId) + "/scorecard", pollS * 12,
      function (data) {
        var r = data.readiness || {};
        document.getElementById("scorecard-readiness").textContent =
          data.period + " · 验收准备 acceptance: " + (r.ready ? "就绪 ready" : "未就绪 not ready") +
          " (核心指标 core " + r.core_met + "/" + r.core_total + ")";
        document.querySelector("#scorecard tbody").innerHTML = data.indicators
          .filter(function (i) { return i.kind === "metered"; }).map(function (i) {
            return "<tr><td>" + esc(i.name_zh) + " <span class=\"muted\">" + esc(i.name_en) +
              "</span></td><td class=\"num\">" +
              (i.value === null || i.value === undefined ? "–" : num(i.value, 3)) + " " +
              esc(i.unit) + "</td><td>" + esc(i.reference_text) + "</td><td class=\"st-" +
              esc(i.status).replace(/ /g, "-") + "\">" + esc(i.status_zh) + "</td></tr>";
          }).join("");
      });
  }

  window.nzc = {startOverview: startOverview, startSite: startSite,
                startScorecard: startScorecard};
})();
