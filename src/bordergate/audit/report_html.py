"""The self-contained HTML form of an audit report (inline CSS and SVG, no scripts).

:func:`render_report_html` renders a ``report.json`` document into one HTML
page that opens without any network: the style sheet is inlined from
``bordergate/web/static/report.css`` and every chart is inline SVG generated
by :mod:`bordergate.audit.charts`.  The page carries a Content-Security-Policy
that forbids scripts and every remote load.

Everything that comes from the report (and so from log entries) is escaped.
Pure apart from reading the packaged style sheet; this module must never
emit an unescaped value or a reference to a remote resource.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

from bordergate.audit.charts import hbar_svg, sankey_svg, stacked_bars_svg
from bordergate.audit.findings import FINDING_KINDS
from bordergate.audit.witness_check import witness_summary

__all__ = ["render_report_html"]

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'")


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


@cache
def _css() -> str:
    return (Path(__file__).resolve().parents[1] / "web" / "static" / "report.css").read_text(
        encoding="utf-8")


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table; cells are already-escaped HTML."""
    if not rows:
        return '<p class="none">None.</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{_e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_report_html(report: dict[str, Any]) -> str:
    """The HTML page of ``report`` (a :func:`bordergate.audit.report.build_report` document)."""
    s = report["summary"]
    sections = [
        _summary(report, s), _logs(report), _versions(report), _findings(report),
        _flows(report),
        _timeline(report), _denials(report), _approvals(report), _releases(report),
        _separation(report), _controls(report), _how_to_verify(),
    ]
    nav = "".join(f'<a href="#{i}">{_e(t)}</a>' for i, t in (
        ("summary", "Summary"), ("logs", "Logs"), ("versions", "Entry versions"),
        ("findings", "Findings"), ("flows", "Flows"),
        ("time", "Over time"), ("denials", "Denials"), ("approvals", "Approvals"),
        ("releases", "Releases"), ("separation", "Separation"), ("controls", "Controls"),
        ("verify", "Verify")))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report['title'])}</title><style>{_css()}</style></head><body>"
        f"<header><h1>{_e(report['title'])}</h1><p>By {_e(report['auditor'])}, generated "
        f"{_e(report['generated'])} ({_e(report['format'])})</p><nav>{nav}</nav></header>"
        "<main>" + "".join(sections) + "</main></body></html>\n")


def _summary(report: dict[str, Any], s: dict[str, Any]) -> str:
    verdict_cls = "ok" if s["findings"] == 0 and not s["logs_failed"] \
        and not s.get("logs_unwitnessed") else "bad"
    cards = [
        ("Logs verified", f"{s['logs_verified']} / {s['logs']}"),
        ("Entries audited", f"{s['entries']:,}"),
        ("New this run", f"{s['new_entries']:,}"),
        ("Decisions replayed", f"{s['decisions_replayed']:,}"),
        ("Replay mismatches", f"{s['replay_mismatches']:,}"),
        ("Denied field decisions", f"{s['denied_field_decisions']:,}"),
        ("Findings", f"{s['findings']:,}"),
    ]
    card_html = "".join(f'<div class="card"><div class="v">{_e(v)}</div>'
                        f'<div class="k">{_e(k)}</div></div>' for k, v in cards)
    sev = "".join(f'<span class="sev {_e(k)}">{_e(k)}: {_e(v)}</span>'
                  for k, v in s["by_severity"].items() if v)
    kinds = _table(["kind", "findings", "meaning"], [
        [f"<code>{_e(k)}</code>", _e(v), _e(FINDING_KINDS[k].title if k in FINDING_KINDS
                                              else "")]
        for k, v in s["by_kind"].items()])
    return (f'<section id="summary"><h2>Summary</h2><p class="verdict {verdict_cls}">'
            f"{_e(s['verdict'])}</p><div class=\"cards\">{card_html}</div><p>{sev}</p>"
            f"{kinds if s['by_kind'] else ''}</section>")


def _logs(report: dict[str, Any]) -> str:
    rows = []
    for log in report["logs"]:
        status = ('<span class="ok">verified</span>' if log["verified"]
                  else f'<span class="bad">FAILED {_e(log["code"] or "")}</span> '
                       f'{_e(log["reason"] or log["error"] or "")}')
        rows.append([_e(log["jurisdiction"]), f"<code>{_e(log['origin'])}</code>", status,
                     _e(log["size"]), _e(log["previous_size"]), _e(log["new_entries"]),
                     _e(witness_summary(log)),
                     f"<code>{_e((log['root'] or '')[:16])}</code>",
                     _e(log["first_entry"]) + " \u2013 " + _e(log["last_entry"])])
    notes = "".join(f'<li>{_e(log["jurisdiction"])}: {_e(w)}</li>'
                    for log in report["logs"] for w in log["warnings"])
    checkpoints = "".join(
        f'<details><summary>Checkpoint audited: {_e(log["jurisdiction"])}</summary>'
        f'<pre>{_e(log["checkpoint"])}</pre></details>'
        for log in report["logs"] if log["checkpoint"])
    return ('<section id="logs"><h2>Logs</h2>' + _table(
        ["jurisdiction", "origin", "log check", "size", "previous", "new", "witnesses",
         "root", "entries from \u2013 to"], rows)
        + (f"<ul class=\"warn\">{notes}</ul>" if notes else "") + checkpoints + "</section>")


def _versions(report: dict[str, Any]) -> str:
    doc = report.get("entry_versions") or {}
    counts = ", ".join(f"{_e(n)} of version {_e(v)}" for v, n in doc.get("entries", {}).items())
    said = "".join(f"<li>{_e(line)}</li>" for line in doc.get("statements", []))
    rows = [[_e(r["version"]), _e(r["check"]), _e(r["since"]), _e(r["entries"]),
             _e(r["missing"])] for r in doc.get("not_checked", [])]
    body = (f"<p>Entries: {counts or 'none'}.</p>"
            + (f'<ul class="warn">{said}</ul>' if said else "")
            + (_table(["entry version", "check", "from version", "entries",
                       "what they miss"], rows)
               if rows else "<p>No entry is of a version older than a check needs.</p>"))
    return f'<section id="versions"><h2>Entry versions</h2>{body}</section>'


def _findings(report: dict[str, Any]) -> str:
    items = []
    for f in report["findings"]:
        proof = f.get("proof")
        proof_html = ""
        if proof:
            proof_html = ("<details><summary>inclusion proof (RFC 9162) against the audited "
                          f"checkpoint of size {_e(proof['tree_size'])}</summary><pre>"
                          + _e(json.dumps(proof, indent=1)) + "</pre></details>")
        repeats = (f" <span class=\"muted\">(and {_e(f['repeats'])} later entries of the "
                   "same cause)</span>" if f.get("repeats") else "")
        unverified = (' <span class="cat">from an UNVERIFIED log (what it says, not '
                      "evidence)</span>" if f.get("unverified") else "")
        items.append(
            f'<li class="finding {_e(f["severity"])}"><div><span class="sev '
            f'{_e(f["severity"])}">{_e(f["severity"])}</span> <span class="cat">'
            f'{_e(f["category"])}</span>{unverified} <code>{_e(f["kind"])}</code> \u2014 '
            f'{_e(f["jurisdiction"])} entry <b>{_e(f["index"])}</b> {_e(f["time"] or "")}'
            f'</div><div class="title">{_e(f["title"])}</div><div>{_e(f["explanation"])}'
            f"{repeats}</div>{proof_html}</li>")
    body = f'<ol class="findings">{"".join(items)}</ol>' if items else \
        '<p class="ok">No findings.</p>'
    return f'<section id="findings"><h2>Findings</h2>{body}</section>'


def _flows(report: dict[str, Any]) -> str:
    flows = [{**f, "source": f"{f['source']} data", "destination": f"to {f['destination']}"}
             for f in report["flows"]]
    chart = sankey_svg(flows, ["source", "destination", "class", "purpose"],
                       titles=["data home", "principal located in", "class", "purpose"])
    rows = [[_e(f["source"]), _e(f["destination"]), _e(f["class"]), _e(f["purpose"]),
             _e(f["count"])] for f in report["flows"][:200]]
    withheld = [[_e(f["source"]), _e(f["destination"]), _e(f["class"]), _e(f["purpose"]),
                 _e(f["count"])] for f in report["withheld"][:200]]
    headers = ["data home (source)", "principal located in (destination)", "class",
               "purpose", "fields"]
    return ('<section id="flows"><h2>Flows of released fields</h2><p>Fields released, '
            "from where the data lives to where the principal works, by class and purpose "
            "(aggregates are exports).</p>" + chart
            + "<details><summary>Released (table)</summary>" + _table(headers, rows)
            + "</details><details><summary>Withheld (denied field decisions)</summary>"
            + _table(headers, withheld) + "</details></section>")


def _timeline(report: dict[str, Any]) -> str:
    t = report["timeline"]
    chart = stacked_bars_svg(t["series"], ["allowed", "partial", "denied"],
                             ["#2f855a", "#d69e2e", "#c53030"])
    return (f'<section id="time"><h2>Decisions over time</h2><p>Decision entries per '
            f"{_e(t['bucket_seconds'])} s.</p>{chart}</section>")


def _denials(report: dict[str, Any]) -> str:
    chart = hbar_svg([(d["reason"], d["count"]) for d in report["denials"][:30]],
                     empty="no denials")
    return ('<section id="denials"><h2>Denials by reason</h2><p>Denied field decisions, by '
            "the forbidding policy or the missing permit.</p>" + chart + "</section>")


def _approvals(report: dict[str, Any]) -> str:
    rows = []
    for a in report["approvals"]:
        r = a["requester"]
        rows.append([
            _e(a["jurisdiction"]), f"<code>{_e(a['id'])}</code>",
            f"{_e(r['id'])} ({_e(r['org'])}, {_e(r['org_kind'])}, in {_e(r['location'])})",
            f"{_e(a['purpose'])} / {_e(a['reason'])}",
            _e(", ".join(a["scope"]["collections"])) + " : "
            + _e(", ".join(a["scope"]["classes"])),
            _e(", ".join(g["approver"] + ("" if g["counted"] else " (not counted)")
                         for g in a["grants"])),
            _e(a["state"]), _e(a["time_to_grant_s"]), _e(a["duration_s"]), _e(a["uses"]),
            _e(a["released_fields"])])
    chart = hbar_svg([(a["id"], a["uses"]) for a in report["approvals"][:30]], unit=" uses",
                     empty="no approvals")
    refused = [[_e(r["attempt"]), _e(r["count"])] for r in report.get("approval_refusals", [])]
    return ('<section id="approvals"><h2>Approvals</h2>' + _table(
        ["jurisdiction", "approval", "asked by", "purpose / reason", "scope", "granted by",
         "state", "s to grant", "valid for s", "uses", "fields released"], rows)
        + "<h3>How often used</h3>" + chart
        + "<h3>Refused attempts (action/code)</h3>" + _table(["attempt", "count"], refused)
        + "</section>")


def _releases(report: dict[str, Any]) -> str:
    rows = [[_e(r["jurisdiction"]), _e(r["index"]), f"<code>{_e(r['id'][:23])}</code>",
             _e(r["version"]), _e(r["state"]), _e(", ".join(r["approvals"])),
             _e(r["proposed"]), _e(r["decided"]), _e(r["review_latency_s"])]
            for r in report["releases"]]
    chart = hbar_svg([(f"{r['jurisdiction']} {r['id'][7:19]}", r["review_latency_s"])
                      for r in report["releases"] if r["review_latency_s"] is not None],
                     unit=" s", empty="no reviewed releases")
    starts = [[_e(s["jurisdiction"]), _e(s["index"]), _e(s["time"]), _e(s["gateway"]),
               f"<code>{_e((s['release'] or '-')[:23])}</code>",
               '<span class="ok">yes</span>' if s["reviewed"] else
               '<span class="bad">NO (unreviewed)</span>'] for s in report["gateway_starts"]]
    return ('<section id="releases"><h2>Releases and review latency</h2>' + _table(
        ["jurisdiction", "entry", "release", "version", "state", "approved by", "proposed",
         "decided", "latency s"], rows) + "<h3>Review latency</h3>" + chart
        + "<h3>Gateway starts</h3>" + _table(
            ["jurisdiction", "entry", "time", "gateway", "release", "reviewed"], starts)
        + "</section>")


def _separation(report: dict[str, Any]) -> str:
    sep = report.get("separation") or {"homes": {}, "verify": None}
    rows = [[_e(h), *(_e(v[k]) for k in ("batches", "records_migrated", "migration_entries",
                                          "legacy_deletion_entries", "findings"))]
            for h, v in sorted(sep["homes"].items())]
    verify = sep.get("verify")
    if verify is None:
        stated = "<p>No <code>migrate verify</code> results were given to this audit.</p>"
    elif "error" in verify:
        stated = f"<p>The verify results could not be read ({_e(verify['error'])}).</p>"
    else:
        items = "".join(f"<li>{_e(f)}</li>" for f in verify["failures"])
        gaps = "".join(f"<li>{_e(u)}</li>" for u in verify["unverifiable"])
        stated = (f"<p>Custodians' <code>migrate verify</code>: "
                  f"<b>{'all matched' if verify['ok'] else 'FAILED'}</b></p>"
                  f"<ul>{items}</ul><p>Not verifiable by any tool here:</p><ul>{gaps}</ul>")
    return ('<section id="separation"><h2>Separation of the legacy business</h2><p>What '
            'each log shows migrated and deleted from the legacy source (issue 15).</p>'
            + _table(["home", "batches", "records", "migration entries",
                      "legacy deletions", "findings"], rows) + stated + "</section>")


def _controls(report: dict[str, Any]) -> str:
    rows = []
    for c in report["controls"]:
        evidence = "".join(
            f"<li>{_e(x['text'])} <i>(attested by: "
            f"{_e(', '.join(x['attested_by']) or 'nobody')})</i></li>"
            for x in c["evidence"]) or "<li>None in the audited logs.</li>"
        gaps = "".join(f"<li>{_e(x)}</li>" for x in c["gaps"])
        status = c["status"]
        found = (f"<br>{_e(c['findings'])} finding(s): "
                 + _e(", ".join(c["finding_kinds"]))) if c["findings"] else ""
        wording = "" if c["text_committed"] else \
            " <i>(our wording; the requirement's text is not yet committed)</i>"
        rows.append([f"<b>{_e(c['citation'])}</b><br>{_e(c['requirement'])}{wording}"
                     f"<br><q>{_e(c['quote'])}</q>",
                     f'<span class="status {_e(status.replace(" ", "-"))}">{_e(status)}</span>'
                     + found, f"<ul>{evidence}</ul>",
                     f"<ul>{gaps}</ul><p>The organisation must show: "
                     f"{_e(c['organisation_must_show'])}</p>"])
    return ('<section id="controls"><h2>Controls: DOJ Data Security Program (28 CFR 202) and '
            "CISA restricted-transaction requirements</h2><p>One row per requirement; each "
            "quote is checked against the committed text (docs/compliance.md says where the "
            "mapping is our interpretation). Nothing is <i>evidenced</i> on the gateway's own "
            "entries alone.</p>"
            + _table(["requirement", "status", "evidence (and who attests it)",
                      "gaps, and what the organisation must show"], rows,
                     "controls") + "</section>")


def _how_to_verify() -> str:
    return ('<section id="verify"><h2>Checking a finding yourself</h2><p>Each proof holds '
            "the entry (base64), its leaf hash SHA-256(0x00 || entry), and the RFC 9162 "
            "audit path to the root of the checkpoint audited (shown under Logs, signed by "
            "the custodian; the Logs table says which witnesses cosigned it and when, if "
            "any did). Recompute the leaf hash, fold the path "
            "with SHA-256(0x01 || left || right) by the bits of the index, and compare with "
            "the checkpoint's root; <code>bordergate log prove</code> does the same against "
            "a live log.</p></section>")
