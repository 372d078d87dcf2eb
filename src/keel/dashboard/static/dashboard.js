// The dashboard's own script (served at /ui/static/dashboard.js; pages allow no inline script).
// Every value from the server goes into the page as text (textContent, DOM nodes), never as
// HTML: logged inputs are whatever a client sent, within the contract. The login token is not
// here: the server keeps the session in an HttpOnly cookie. Actions send the page's CSRF token.
"use strict";

function keelElement(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) { e.textContent = String(text); }
  if (className) { e.className = className; }
  return e;
}

function keelCsrf() {
  const meta = document.querySelector("meta[name='keel-csrf']");
  return meta ? meta.content : "";
}

function keelSay(text, ok) {
  const msg = document.getElementById("message");
  msg.textContent = text;
  msg.className = ok ? "ok" : "error";
}

async function keelJson(response) {
  try { return await response.json(); } catch (e) { return { error: response.statusText }; }
}

async function keelAdmin(path, body) {
  const r = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": keelCsrf() },
    body: JSON.stringify(body),
  });
  const data = await keelJson(r);
  keelSay(r.ok ? data.message : ("Refused (" + r.status + "): " + data.error), r.ok);
  if (r.ok) { setTimeout(() => location.reload(), 600); }
}

async function keelExplore(model, pid) {
  const r = await fetch(
    "/ui/api/models/" + encodeURIComponent(model) + "/predictions/" + encodeURIComponent(pid),
    { credentials: "same-origin" },
  );
  const d = await keelJson(r);
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

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-admin]")) {
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      const body = { reason: form.elements.reason.value };
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
});
