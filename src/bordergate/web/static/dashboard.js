// bordergate gateway dashboard: polls data.json and draws it.  No third-party code.
// Everything shown goes through textContent or SVG text nodes: entries are untrusted.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var COLOURS = ["#2b6cb0", "#c05621", "#2f855a", "#805ad5", "#b83280", "#2c7a7b", "#975a16"];

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function svgEl(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { e.textContent = String(text); }
    return e;
  }
  function fill(id, node) {
    var box = document.getElementById(id);
    while (box.firstChild) { box.removeChild(box.firstChild); }
    box.appendChild(node);
  }
  function table(headers, rows) {
    if (!rows.length) { return el("p", "None.", "muted"); }
    var t = el("table"), head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", h)); });
    t.appendChild(head);
    rows.forEach(function (r) {
      var tr = el("tr");
      r.forEach(function (c) { tr.appendChild(el("td", c)); });
      t.appendChild(tr);
    });
    return t;
  }
  function bars(items, unit) {
    var svg = svgEl("svg", {"class": "chart", width: 900, height: Math.max(30, items.length * 22 + 8),
                            viewBox: "0 0 900 " + Math.max(30, items.length * 22 + 8), role: "img"});
    if (!items.length) {
      svg.appendChild(svgEl("text", {x: 6, y: 20, fill: "#666", "font-size": 12}, "no decisions in the last minute"));
      return svg;
    }
    var peak = Math.max.apply(null, items.map(function (i) { return i[1]; })) || 1;
    items.forEach(function (item, n) {
      var y = 4 + n * 22, w = Math.max(1, item[1] / peak * 560);
      svg.appendChild(svgEl("text", {x: 250, y: y + 14, "text-anchor": "end", "font-size": 12}, item[0]));
      svg.appendChild(svgEl("rect", {x: 256, y: y + 2, width: w, height: 16, fill: COLOURS[n % COLOURS.length], "class": "bar"}));
      svg.appendChild(svgEl("text", {x: 262 + w, y: y + 14, "font-size": 12}, item[1] + unit));
    });
    return svg;
  }
  // A time from an entry or a cosignature: other parties wrote it, so one that is not a
  // number or is out of the Date range is shown as such, never thrown on.
  function when(t) {
    if (t === null || t === undefined || t === 0) { return "-"; }
    var d = new Date(Number(t) * 1000);
    return isNaN(d.getTime()) ? "(not a time)" : d.toISOString().replace(".000", "");
  }
  // Draw one section; a value it cannot draw costs that section, not the page.
  function section(id, draw) {
    try { fill(id, draw()); }
    catch (err) { fill(id, el("p", "Cannot show this section: " + err.message, "bad")); }
  }

  function render(d) {
    var cards = el("div", null, "cards"), log = d.log, r = d.rates;
    [["log size", log.size], ["entries read", d.view.entries_read], ["checkpoint age", log.checkpoint_age_s === null ? "-" : log.checkpoint_age_s + " s"],
     ["cosignatures", log.witnessed], ["decisions/s (allowed fields)", r.total_per_s],
     ["pending approvals", d.approvals.length],
     ["last audit findings", d.audit && !d.audit.error ? d.audit.findings_total : "-"]].forEach(function (c) {
      var card = el("div", null, "card");
      card.appendChild(el("div", c[1], "v"));
      card.appendChild(el("div", c[0], "k"));
      cards.appendChild(card);
    });
    fill("cards", cards);
    section("rates", function () {
      var pairs = Object.keys(r.by_class_and_destination).map(function (k) { return [k, r.by_class_and_destination[k]]; });
      return bars(pairs, "/s");
    });
    section("witnesses", function () {
      return table(["witness", "cosigned at"], log.cosignatures.map(function (c) {
        return [c.witness, c.verified && c.time !== null ? when(c.time) : (c.note || "not verified")];
      }));
    });
    section("types", function () {
      return table(["type", "entries"], Object.keys(d.entry_types).map(function (k) { return [k, d.entry_types[k]]; }));
    });
    var v = d.view, banner = document.getElementById("view");
    banner.textContent = v.partial
      ? "Partial view: " + v.reason + ". Figures below cover entries 0 to " + (v.entries_read - 1) + " only."
      : "Complete view: all " + v.log_size + " entries of the log read" +
        (v.restored_from ? " (continued from entry " + v.restored_from + " of the saved state)" : "") + ".";
    if (v.note) { banner.textContent += " " + v.note + "."; }
    banner.className = v.partial ? "bad" : "ok";
    section("bulk", function () {
      return table(["counterparty", "counter", "now", "peak", "threshold (more than)", "of threshold"],
        d.bulk.map(function (b) {
          return [b.counterparty, b.counter, b.current + " " + b.unit, b.peak + " " + b.unit, b.threshold,
                  b.share === null ? "any volume" : Math.round(b.share * 1000) / 10 + "%"];
        }));
    });
    section("budgets", function () {
      return table(["scope", "principal or collection", "period", "spent", "limit", "entry"],
        d.budgets.map(function (b) {
          return [b.scope, b.name, when(b.period), b.spent_micro / 1e6, b.limit_micro / 1e6, b.index];
        }));
    });
    section("approvals", function () {
      return table(["approval", "requester", "org", "located in", "purpose", "reason", "scope", "grants", "age s"],
        d.approvals.map(function (a) {
          return [a.id, a.requester, a.org, a.location, a.purpose, a.reason, a.collections.join(",") + ": " + a.classes.join(","), a.grants + "/2", a.age_s];
        }));
    });
    section("releases", function () {
      return table(["entry", "release", "version", "approvals", "rejections", "proposed"],
        d.releases.map(function (x) { return [x.index, String(x.id).slice(0, 23), x.version, x.approvals, x.rejections, when(x.time)]; }));
    });
    section("starts", function () {
      return table(["entry", "time", "release", "reviewed"],
        d.starts.map(function (s) { return [s.index, when(s.time), String(s.release).slice(0, 23), s.reviewed ? "yes" : "NO (unreviewed)"]; }));
    });
    section("audit", function () {
      var audit = d.audit;
      if (!audit) { return el("p", "No audit report configured (BORDERGATE_AUDIT_REPORT).", "muted"); }
      if (audit.error) { return el("p", audit.error, "bad"); }
      var box = el("div");
      box.appendChild(el("p", "Generated " + audit.generated + ": " + audit.verdict + " (" + audit.findings_total + " finding(s) in all logs)",
                         audit.findings_total ? "bad" : "ok"));
      box.appendChild(table(["severity", "kind", "entry", "explanation"],
        audit.findings.map(function (f) { return [f.severity, f.kind, f.index, f.explanation]; })));
      return box;
    });
    document.getElementById("updated").textContent = "Updated " + when(d.now) + ".";
  }

  function poll() {
    fetch("data.json", {cache: "no-store"}).then(function (resp) {
      if (!resp.ok) { throw new Error("HTTP " + resp.status); }
      return resp.json();
    }).then(render).catch(function (err) {
      document.getElementById("updated").textContent = "Update failed: " + err.message;
    });
  }
  setInterval(poll, 2000);  // first: a page the initial data cannot draw still updates
  try { render(JSON.parse(document.getElementById("initial").textContent)); }
  catch (err) { document.getElementById("updated").textContent = "Cannot draw: " + err.message; }
})();
