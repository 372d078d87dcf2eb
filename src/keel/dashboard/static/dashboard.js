// The dashboard's own script (served at /ui/static/dashboard.js; pages allow no inline script).
// Every value from the server goes into the page as text (textContent), never as HTML: logged
// inputs are whatever a client sent, within the contract.
"use strict";

function keelToken() { return sessionStorage.getItem("keelToken") || ""; }
function keelSaveToken(v) { sessionStorage.setItem("keelToken", v); }

function keelElement(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) { e.textContent = String(text); }
  if (className) { e.className = className; }
  return e;
}

async function keelAdmin(path, body) {
  const reason = prompt("Reason for this change (it goes to the audit log):");
  const msg = document.getElementById("message");
  if (!reason) { msg.textContent = "Cancelled: a reason is required."; msg.className = "error"; return; }
  body.reason = reason;
  const r = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Authorization": "Bearer " + keelToken() },
    body: JSON.stringify(body),
  });
  const data = await r.json();
  msg.textContent = r.ok ? data.message : ("Refused (" + r.status + "): " + data.error);
  msg.className = r.ok ? "ok" : "error";
  if (r.ok) { setTimeout(() => location.reload(), 600); }
}

async function keelExplore(model, pid) {
  const r = await fetch("/ui/api/models/" + encodeURIComponent(model) + "/predictions/" + encodeURIComponent(pid));
  const d = await r.json();
  const out = document.getElementById("explained");
  out.replaceChildren();
  if (!r.ok) { out.append(keelElement("p", d.error, "error")); return; }
  const summary = keelElement("p", "version " + d.version + ", " + d.role + ", at " + d.time + ": prediction ");
  summary.append(keelElement("b", d.prediction));
  const head = keelElement("tr");
  for (const h of ["input (as logged)", "value", "SHAP"]) { head.append(keelElement("th", h)); }
  const thead = keelElement("thead");
  thead.append(head);
  const tbody = keelElement("tbody");
  for (const [k, v] of Object.entries(d.features)) {
    const row = keelElement("tr");
    const shap = d.shap[k] === undefined ? "" : Number(d.shap[k]).toFixed(4);
    row.append(keelElement("td", k), keelElement("td", v), keelElement("td", shap));
    tbody.append(row);
  }
  const table = keelElement("table");
  table.append(thead, tbody);
  out.append(summary, table);
}

function keelCharts() {
  // the specs come as a JSON data block (not executed); vegaEmbed draws each in its element
  window.keelViews = window.keelViews || {};
  const block = document.getElementById("keel-charts");
  if (!block) { return; }
  for (const [id, spec] of Object.entries(JSON.parse(block.textContent))) {
    vegaEmbed("#" + CSS.escape(id), spec, { actions: false }).then(r => { window.keelViews[id] = r.view; });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const token = document.getElementById("token");
  if (token) {
    token.value = keelToken();
    token.addEventListener("change", () => keelSaveToken(token.value));
  }
  for (const form of document.querySelectorAll("form[data-admin]")) {
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      const body = {};
      if (form.elements.version) { body.version = +form.elements.version.value; }
      if (form.elements.weight) { body.weight = +form.elements.weight.value; }
      keelAdmin("/ui/api/models/" + encodeURIComponent(form.dataset.model) + "/" + form.dataset.admin, body);
    });
  }
  const explore = document.getElementById("explore");
  if (explore) {
    explore.addEventListener("submit", ev => {
      ev.preventDefault();
      keelExplore(explore.dataset.model, explore.elements.pid.value);
    });
  }
  keelCharts();
});
