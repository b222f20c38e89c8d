// The try page: sign in with a token, submit a photo, follow the job, show its result.
// It speaks the public API only, at the paths the page names (data-*-url on <body>).
"use strict";

const TOKEN_KEY = "segment-token";
// Each status read asks the server to hold it until the job ends, up to WAIT_SECONDS
// (`?wait=N`): the result shows the moment it is ready, and the stage at least that often.
// A server that answers at once with nothing new (no long polling, or no free waiting
// slot) is asked again MIN_POLL_MS later.
const WAIT_SECONDS = 2;
const MIN_POLL_MS = 1000;
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
// Answers worth trying again after a pause; any other error ends the follow.
const TRANSIENT = new Set([0, 429, 502, 503, 504]);
// Which output is the "after" picture, first found wins.
const SHOWN_OUTPUT = ["overlay", "composite", "cutout", "alpha", "matte"];

const urls = document.body.dataset; // accountUrl, modelsUrl, jobsUrl
const $ = (id) => document.getElementById(id);

let token = null;
let catalog = { models: [], defaults: {} };
let photo = null;
let photoURL = null;
// One key per submit, kept when the request got no answer, so that pressing Segment again
// resends it under the same key and the server answers with the job it may already have
// made, never a second one. Any change to the form starts a new key.
let idempotencyKey = null;
let following = 0; // a new submit or a sign-out stops following the previous job

class APIError extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    Object.assign(this, { status, code, retryAfter });
  }
}

async function api(url, options = {}) {
  const headers = { Accept: "application/json", ...options.headers };
  if (token) headers.Authorization = `Token ${token}`;
  let response;
  try {
    response = await fetch(url, { ...options, headers });
  } catch (err) {
    throw new APIError(0, "network_error", `The server could not be reached (${err.message}).`);
  }
  const body = await response.json().catch(() => null);
  if (response.ok) return body;
  const error = (body && body.error) || {};
  const fields = Object.entries(error.fields || {}).map(([name, problems]) => `${name}: ${[].concat(problems).join(" ")}`);
  throw new APIError(
    response.status,
    error.code || `http_${response.status}`,
    [error.message || response.statusText, ...fields].join(" "),
    Number(response.headers.get("Retry-After")) || 0,
  );
}

function showError(err) {
  $("error").textContent = err.code ? `${err.message} (${err.code})` : err.message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function newKey() {
  // crypto.getRandomValues, not randomUUID: a phone on http://<laptop's address> is no secure context.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- Signing in: the token lives in sessionStorage, or localStorage when remembered ------

const storage = {
  load() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
    } catch {
      return null; // storage switched off: sign in each visit
    }
  },
  save(value, remember) {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, value);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
  },
};

async function signIn(candidate, remember) {
  clearError();
  token = candidate;
  try {
    const account = await api(urls.accountUrl);
    catalog = await api(urls.modelsUrl);
    if (remember !== null) storage.save(candidate, remember);
    $("token").value = "";
    $("who").textContent = `Signed in as ${account.username}.`;
    setSignedIn(true);
    fillModels();
  } catch (err) {
    token = null;
    if (err.status === 401) storage.clear();
    showError(err);
  }
}

function signOut() {
  token = null;
  following++;
  storage.clear();
  setSignedIn(false);
  $("job").hidden = $("result").hidden = true;
}

function setSignedIn(yes) {
  $("sign-in").hidden = yes;
  $("signed-in").hidden = !yes;
  $("submit-fields").disabled = !yes;
}

// --- Choosing a task and a model ---------------------------------------------------------

function modelTask(task) {
  return task === "cutout" ? "semantic" : task; // a cutout's default is the semantic one
}

function fillModels() {
  const task = $("task").value;
  const tasks = task === "cutout" ? ["semantic", "instance", "matte"] : [task];
  const fallback = catalog.defaults[modelTask(task)];
  const select = $("model");
  select.replaceChildren(new Option(fallback ? `The default (${fallback})` : "The default", ""));
  for (const model of catalog.models.filter((m) => tasks.includes(m.task))) {
    const option = new Option(model.available ? model.name : `${model.name} (no worker serves it now)`, model.name);
    option.disabled = !model.available;
    select.add(option);
  }
  $("background-field").hidden = task !== "cutout";
  describeModel();
}

function describeModel() {
  const name = $("model").value || catalog.defaults[modelTask($("task").value)];
  const model = catalog.models.find((m) => m.name === name);
  $("model-help").textContent = model ? `${model.name}: ${model.description} (licence ${model.licence})` : "";
}

// --- Submitting and following the job ----------------------------------------------------

async function submit(event) {
  event.preventDefault();
  clearError();
  if (!photo) return showError(new APIError(0, "", "Choose a photo first."));
  const task = $("task").value;
  const form = new FormData();
  form.append("image", photo, photo.name || "photo.jpg");
  form.append("task", task);
  if ($("model").value) form.append("model", $("model").value);
  if (task === "cutout") form.append("background", $("background").value);
  idempotencyKey = idempotencyKey || newKey();
  $("go").disabled = true;
  let job;
  try {
    job = await api(urls.jobsUrl, { method: "POST", body: form, headers: { "Idempotency-Key": idempotencyKey } });
    idempotencyKey = null;
  } catch (err) {
    if (err.status !== 0) idempotencyKey = null; // answered: nothing was made under the key
    return showError(err);
  } finally {
    $("go").disabled = false;
  }
  if (photoURL) URL.revokeObjectURL(photoURL);
  photoURL = URL.createObjectURL(photo);
  await follow(job);
}

async function follow(job) {
  const mine = ++following;
  const url = `${urls.jobsUrl}${job.id}/?wait=${WAIT_SECONDS}`;
  const started = performance.now();
  $("history").replaceChildren();
  $("result").hidden = true;
  $("job").hidden = false;
  for (;;) {
    const state = stateOf(job);
    record(job, state, started);
    if (TERMINAL.has(job.status)) break;
    const asked = performance.now();
    try {
      job = await api(url);
    } catch (err) {
      if (mine !== following) return;
      showError(err);
      if (!TRANSIENT.has(err.status)) return; // the job is gone, or the token
      await sleep(Math.max(err.retryAfter * 1000, 2 * MIN_POLL_MS));
      continue;
    }
    if (mine !== following) return;
    if (stateOf(job) === state) await sleep(MIN_POLL_MS - (performance.now() - asked));
  }
  if (job.status === "succeeded") {
    clearError();
    showResult(job);
  } else {
    showError(job.error ? new APIError(0, job.error.code, job.error.message) : new APIError(0, "", `The job was ${job.status}.`));
  }
}

function stateOf(job) {
  return job.progress && job.progress !== job.status ? `${job.status}: ${job.progress}` : job.status;
}

function record(job, state, started) {
  const history = $("history");
  if (history.lastChild && history.lastChild.dataset.state === state) return;
  const item = document.createElement("li");
  item.dataset.state = state;
  item.textContent = `${state} at ${((performance.now() - started) / 1000).toFixed(1)} s`;
  history.append(item);
  $("status").textContent = `Job ${job.id}: ${state}`;
}

// --- The result --------------------------------------------------------------------------

function showResult(job) {
  const files = job.result.files;
  const kind = SHOWN_OUTPUT.find((k) => k in files) || Object.keys(files)[0];
  const after = $("after");
  after.classList.toggle("transparent", kind === "cutout");
  after.alt = `The ${kind} that ${job.model} made of the photo (task ${job.task})`;
  after.src = files[kind];
  $("before").alt = `The photo, ${job.input.filename}`;
  $("before").src = photoURL;
  $("summary").replaceChildren(...summaryLines(job).map((line) => listItem(line)));
  const downloads = [["input", job.input.url], ...Object.entries(files)].filter(([, href]) => href);
  $("downloads").replaceChildren(...downloads.map(([name, href]) => listItem(null, downloadLink(name, href))));
  $("result").hidden = false;
}

function summaryLines(job) {
  const summary = job.result.summary;
  const share = (fraction) => `${(fraction * 100).toFixed(1)}%`;
  const lines = [];
  const classes = summary.classes || [];
  for (const found of classes.filter((c) => typeof c === "object").sort((a, b) => b.fraction - a.fraction)) {
    lines.push(`${found.label}: ${share(found.fraction)} of the pixels`);
  }
  for (const instance of summary.instances || []) {
    lines.push(`${instance.label} #${instance.index}: score ${instance.score.toFixed(2)}`);
  }
  if ("foreground_fraction" in summary) {
    const what = classes.filter((c) => typeof c === "string").join(", ") || summary.foreground || "foreground";
    lines.push(`${what}: ${share(summary.foreground_fraction)} of the photo`);
  }
  const t = job.timings;
  lines.push(`Queued ${t.queue_ms} ms, inference ${t.inference_ms} ms, rendering ${t.rendering_ms} ms`);
  return lines;
}

function listItem(text, child) {
  const item = document.createElement("li");
  if (child) item.append(child);
  else item.textContent = text;
  return item;
}

function downloadLink(name, href) {
  const link = document.createElement("a");
  const file = new URL(href, location.href).pathname.split("/").pop();
  link.href = href;
  link.download = file;
  link.textContent = `${name}: ${file}`;
  return link;
}

// --- Wiring ------------------------------------------------------------------------------

function choosePhoto(event) {
  photo = event.target.files[0] || photo;
}

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token").value.trim(), $("remember").checked);
});
$("sign-out").addEventListener("click", signOut);
$("task").addEventListener("change", fillModels);
$("model").addEventListener("change", describeModel);
$("photo").addEventListener("change", choosePhoto);
$("camera").addEventListener("change", choosePhoto);
$("submit").addEventListener("change", () => {
  idempotencyKey = null;
});
$("submit").addEventListener("submit", submit);
$("split").addEventListener("input", (event) => {
  document.querySelector(".frame").style.setProperty("--split", `${event.target.value}%`);
});

const saved = storage.load();
if (saved) signIn(saved, null);
