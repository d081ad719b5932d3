// updraft dashboard: the little the pages need beyond HTML forms. Every page
// works without it (forms post and the server answers with a page); with it,
// the wizard shows one step at a time and estimates as you type, a job's page
// follows the job live, and an upload shows its progress.
"use strict";

function $(sel, root) { return (root || document).querySelector(sel); }
function $$(sel, root) { return Array.from((root || document).querySelectorAll(sel)); }

// Forms that ask before they act (cancel, force-cancel, delete).
document.addEventListener("submit", (e) => {
  const q = e.target.getAttribute("data-confirm");
  if (q && !window.confirm(q)) e.preventDefault();
});

// Rows that can be added and deleted (job metadata, property and metadata conditions).
document.addEventListener("click", (e) => {
  const add = e.target.closest("[data-add-row]");
  if (add) {
    const list = document.getElementById(add.getAttribute("data-add-row"));
    const max = parseInt(list.getAttribute("data-max") || "10", 10);
    const rows = $$("[data-row]", list);
    if (rows.length >= max) { add.setAttribute("aria-disabled", "true"); return; }
    const tpl = document.getElementById(list.getAttribute("data-template"));
    const row = tpl.content.firstElementChild.cloneNode(true);
    const n = Date.now() % 100000;
    $$("[id]", row).forEach((el) => { el.id = el.id + "-" + n; });
    $$("label[for]", row).forEach((el) => { el.htmlFor = el.htmlFor + "-" + n; });
    list.appendChild(row);
    const first = $("input, select", row);
    if (first) first.focus();
    return;
  }
  const del = e.target.closest("[data-delete-row]");
  if (del) {
    const row = del.closest("[data-row]");
    const list = row.parentElement;
    row.remove();
    const next = $("[data-row] input", list);
    if (next) next.focus();
    estimateSoon();
  }
});

// The wizard: one step at a time, Continue and Back.
const wizard = $("form[data-wizard]");
function showStep(i) {
  const steps = $$("[data-step]", wizard);
  i = Math.max(0, Math.min(i, steps.length - 1));
  steps.forEach((s, k) => { s.hidden = k !== i; });
  $$(".steps li", document).forEach((li, k) => {
    if (k === i) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
  });
  wizard.setAttribute("data-current", String(i));
  const h = $("legend", steps[i]);
  if (h) { h.tabIndex = -1; h.focus(); }
}
if (wizard) {
  const steps = $$("[data-step]", wizard);
  // Open the first step with an error, or the first.
  let first = steps.findIndex((s) => $(".field-error", s));
  showStep(first < 0 ? 0 : first);
  wizard.addEventListener("click", (e) => {
    if (e.target.matches("[data-next]")) { e.preventDefault(); showStep(parseInt(wizard.getAttribute("data-current"), 10) + 1); }
    if (e.target.matches("[data-back]")) { e.preventDefault(); showStep(parseInt(wizard.getAttribute("data-current"), 10) - 1); }
  });
  wizard.addEventListener("input", estimateSoon);
  wizard.addEventListener("change", estimateSoon);
  const image = $("#firmware", wizard);
  if (image) image.addEventListener("change", showImage);
  showImage();
}

// Parts of a form shown only for one choice (a radio or select named by data-show-when="name=value").
function syncToggles() {
  $$("[data-show-when]").forEach((el) => {
    const [name, value] = el.getAttribute("data-show-when").split("=");
    const form = el.closest("form") || document;
    const chosen = $(`[name="${name}"]:checked`, form) || $(`select[name="${name}"]`, form);
    el.hidden = !chosen || chosen.value !== value;
  });
}
document.addEventListener("change", syncToggles);
syncToggles();

// The chosen image's version and details.
function showImage() {
  const sel = $("#firmware", wizard);
  const box = $("#image-details");
  if (!sel || !box) return;
  const opt = sel.selectedOptions[0];
  box.hidden = !opt || !opt.value;
  if (opt && opt.value) {
    $$("[data-image]", box).forEach((el) => { el.textContent = opt.getAttribute("data-" + el.getAttribute("data-image")) || "—"; });
  }
}

// Estimated devices included, and the preview of the filter's results, as the form changes.
let estimateTimer = null;
function estimateSoon() {
  if (!wizard) return;
  clearTimeout(estimateTimer);
  estimateTimer = setTimeout(estimate, 400);
}
async function estimate(preview) {
  const out = $("#estimate");
  if (!out) return;
  const body = new URLSearchParams(new FormData(wizard));
  body.delete("csrf");
  const url = (preview === true ? "preview" : "estimate");
  try {
    const r = await fetch(wizard.getAttribute("data-" + url), {
      method: "POST", body, headers: { "x-csrf-token": wizard.querySelector("[name=csrf]").value },
      credentials: "same-origin",
    });
    const html = await r.text();
    if (preview === true) { $("#preview").innerHTML = html; $("#preview").hidden = false; }
    else out.innerHTML = html;
  } catch (err) { out.textContent = "Could not estimate: " + err; }
}
document.addEventListener("click", (e) => {
  if (e.target.matches("[data-estimate]")) { e.preventDefault(); estimate(false); }
  if (e.target.matches("[data-preview]")) { e.preventDefault(); estimate(true); }
});

// A job's page follows the job: the server sends the live part again when it changes.
const live = $("[data-live]");
if (live && window.EventSource) {
  const src = new EventSource(live.getAttribute("data-live"));
  src.addEventListener("live", (e) => {
    const focused = document.activeElement && document.activeElement.id;
    live.innerHTML = e.data;
    if (focused) { const el = document.getElementById(focused); if (el) el.focus(); }
  });
  src.addEventListener("end", () => src.close());
}

// Firmware upload with a progress bar.
const upload = $("form[data-upload]");
if (upload) {
  upload.addEventListener("submit", (e) => {
    e.preventDefault();
    const bar = $("#upload-progress");
    bar.hidden = false;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.action);
    xhr.upload.addEventListener("progress", (p) => { if (p.lengthComputable) bar.value = Math.round(100 * p.loaded / p.total); });
    xhr.addEventListener("load", () => {
      if (xhr.status < 400) { window.location.assign(xhr.responseURL); return; }
      const doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const main = doc.querySelector("main");
      if (main) { document.querySelector("main").replaceWith(main); } else { bar.hidden = true; }
    });
    xhr.send(new FormData(upload));
  });
}
