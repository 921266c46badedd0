/* bordergate audit report: filters and CSV export, inlined into report.html (no network).
   Reads the findings and flows from the page's JSON block; never fetches anything. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  function val(id) { var el = document.getElementById(id); return el ? el.value : ""; }
  function minute(t) { return t ? String(t).slice(0, 16) : ""; }
  function passes(row) {
    var j = val("f-jurisdiction"), s = val("f-severity"), k = val("f-kind");
    var from = val("f-from"), to = val("f-to");
    if (j && row.jurisdiction !== j) { return false; }
    if (s && row.severity !== s) { return false; }
    if (k && row.kind !== k) { return false; }
    if ((from || to) && !row.time) { return false; }
    if (from && minute(row.time) < from) { return false; }
    if (to && minute(row.time) > to) { return false; }
    return true;
  }
  function flowPasses(row) {
    var j = val("f-jurisdiction");
    return !j || row.source === j || row.destination === j;
  }
  function apply() {
    var shown = 0;
    document.querySelectorAll("ol.findings li.finding").forEach(function (li) {
      var ok = passes({jurisdiction: li.dataset.jurisdiction, severity: li.dataset.severity,
                       kind: li.dataset.kind, time: li.dataset.time});
      li.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.querySelectorAll("tr[data-source]").forEach(function (tr) {
      tr.hidden = !flowPasses(tr.dataset);
    });
    var count = document.getElementById("f-count");
    if (count) { count.textContent = shown + " of " + data.findings.length + " findings shown"; }
  }
  function cell(value) {
    var text = value === null || value === undefined ? "" : String(value);
    if (/^[=+\-@\t\r]/.test(text)) { text = "'" + text; }  /* no formulas in spreadsheets */
    /* quoted with ";" too: a spreadsheet splitting on ";" must not start a cell mid-value */
    return /[",;\n\r]/.test(text) ? "\"" + text.replace(/"/g, "\"\"") + "\"" : text;
  }
  function csv(rows, columns) {
    var lines = [columns.map(cell).join(",")];
    rows.forEach(function (r) { lines.push(columns.map(function (c) { return cell(r[c]); }).join(",")); });
    return lines.join("\r\n") + "\r\n";
  }
  function download(name, text) {
    var url = URL.createObjectURL(new Blob([text], {type: "text/csv;charset=utf-8"}));
    var a = document.createElement("a");
    a.href = url; a.download = name; document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }
  ["f-jurisdiction", "f-severity", "f-kind", "f-from", "f-to"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); }
  });
  var reset = document.getElementById("f-reset");
  if (reset) {
    reset.addEventListener("click", function () {
      document.querySelectorAll("#filters select, #filters input").forEach(function (el) { el.value = ""; });
      apply();
    });
  }
  document.getElementById("csv-findings").addEventListener("click", function () {
    download("findings.csv", csv(data.findings.filter(passes), data.finding_columns));
  });
  document.getElementById("csv-flows").addEventListener("click", function () {
    download("flows.csv", csv(data.flows.filter(flowPasses), data.flow_columns));
  });
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
  apply();
})();
