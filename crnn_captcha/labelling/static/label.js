// The labelling page: shows the next captcha with the model's proposal, and sends each answer at once.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null;  // the item being labelled

function shade(confidence) {
  // the less sure the model is of a character, the stronger its shade
  return `rgba(255, 170, 0, ${(1 - confidence).toFixed(2)})`;
}

function show(state) {
  const f = state.figures;
  $("where").textContent = `${state.folder} \u2192 ${state.manifest}`;
  let figures = `labelled ${f.labelled} of ${f.images}, ${f.left} left`;
  if (f.unreadable) figures += `, ${f.unreadable} unreadable`;
  if (f.cannot_read.length) figures += `, ${f.cannot_read.length} could not be opened (${f.cannot_read.slice(0, 3).join(", ")})`;
  figures += ` \u00b7 ${f.per_minute} labels a minute`;
  if (f.accepted_share !== null) {
    figures += ` \u00b7 proposals taken unchanged: ${Math.round(100 * f.accepted_share)}% of the last ${f.accepted_of}`;
  }
  if (f.checks_of) {
    // random checks: unlike the least confident images, a fair sample of what is left to read
    figures += ` \u00b7 random checks read right: ${f.checks_right} of ${f.checks_of}`;
  }
  $("figures").textContent = figures;
  $("status").textContent = state.status || "";
  current = state.queue.length ? state.queue[0] : null;
  $("done").hidden = current !== null;
  $("image").hidden = current === null;
  $("next").replaceChildren(...state.queue.slice(1).map((item) => {
    const img = document.createElement("img");
    img.src = `/api/image/${encodeURIComponent(item.name)}`;
    img.alt = item.name;
    return img;
  }));
  $("proposal").replaceChildren();
  $("label").value = "";
  if (current === null) return;
  $("image").src = `/api/image/${encodeURIComponent(current.name)}`;
  $("image").alt = current.name;
  [...current.proposal].forEach((ch, i) => {
    const span = document.createElement("span");
    span.textContent = ch;
    span.style.background = shade(current.char_confidences[i] ?? 0);
    $("proposal").append(span);
  });
  $("label").value = current.proposal;
  $("label").focus();
  $("label").select();  // typing replaces the proposal; Enter keeps it
}

async function call(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    $("error").textContent = data.error || `error ${response.status}`;
    return;
  }
  $("error").textContent = "";
  show(data);
}

function act(kind) {
  if (kind === "undo") return call("/api/undo", {});
  if (current === null) return;
  if (kind === "label") return call("/api/answer", {name: current.name, label: $("label").value});
  return call("/api/answer", {name: current.name, kind});
}

document.addEventListener("keydown", (event) => {
  let kind = null;
  if (event.key === "Enter") kind = "label";
  else if (event.key === "Escape") kind = "skip";
  else if (event.ctrlKey && (event.key === "m" || event.key === "M")) kind = "unreadable";
  else if (event.ctrlKey && (event.key === "z" || event.key === "Z")) kind = "undo";
  if (kind === null) return;
  event.preventDefault();
  act(kind);
});
$("accept").addEventListener("click", () => act("label"));
$("skip").addEventListener("click", () => act("skip"));
$("unreadable").addEventListener("click", () => act("unreadable"));
$("undo").addEventListener("click", () => act("undo"));
call("/api/state");
