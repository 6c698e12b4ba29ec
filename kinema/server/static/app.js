// The kinema web page: plain JS over the OpenAI-compatible Videos API. The key lives in localStorage.
"use strict";

const $ = (id) => document.getElementById(id);
let currentId = null;
let pollTimer = null;
let objectUrls = [];

function apiKey() { return localStorage.getItem("kinema.apiKey") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${apiKey()}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { const body = await response.json(); message = body.error.message; } catch (e) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

async function blobUrl(path) {
  const url = URL.createObjectURL(await (await api(path)).blob());
  objectUrls.push(url);
  return url;
}

function showError(message) { $("error").textContent = message || ""; }

function showKeyState() {
  $("key-state").textContent = apiKey() ? "key saved in this browser" : "no key yet";
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const form = new FormData();
  form.append("prompt", $("prompt").value);
  form.append("model", "kinema");
  if ($("seconds").value) form.append("seconds", $("seconds").value);
  if ($("size").value.trim()) form.append("size", $("size").value.trim());
  if ($("image").files.length) form.append("input_reference", $("image").files[0]);
  $("submit").disabled = true;
  try {
    const video = await (await api("/v1/videos", { method: "POST", body: form })).json();
    follow(video.id);
  } catch (error) {
    $("job").hidden = false;
    showError(error.message);
  } finally {
    $("submit").disabled = false;
  }
}

function follow(id) {
  currentId = id;
  objectUrls.forEach((url) => URL.revokeObjectURL(url));
  objectUrls = [];
  $("job").hidden = false;
  $("job-id").textContent = id;
  for (const el of ["preview", "player", "download", "verify-box"]) $(el).hidden = true;
  $("player").removeAttribute("src");
  showError("");
  clearTimeout(pollTimer);
  poll();
}

async function poll() {
  const id = currentId;
  let video;
  try {
    video = await (await api(`/v1/videos/${id}`)).json();
  } catch (error) {
    showError(error.message);
    return;
  }
  if (id !== currentId) return;
  $("status").textContent = video.status;
  $("progress").value = video.progress;
  $("percent").textContent = `${video.progress}%`;
  if (video.status === "queued" || video.status === "in_progress") {
    if (video.status === "in_progress") {
      try {
        const old = $("preview").src;
        $("preview").src = await blobUrl(`/v1/videos/${id}/preview`);
        $("preview").hidden = false;
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      } catch (error) { /* no preview yet */ }
    }
    pollTimer = setTimeout(poll, 500);
    return;
  }
  if (video.status === "failed") {
    showError(video.error ? `${video.error.code}: ${video.error.message}` : "failed");
  } else {
    await showResult(id);
  }
  listVideos();
}

async function showResult(id) {
  const url = await blobUrl(`/v1/videos/${id}/content?variant=video`);
  const player = $("player");
  player.src = url;
  player.hidden = false;
  player.play().catch(() => { /* autoplay may be blocked; the controls remain */ });
  $("download").href = url;
  $("download").download = `${id}.mp4`;
  $("download").hidden = false;
  $("preview").hidden = true;
  try {
    const report = await (await api(`/v1/videos/${id}/verify`)).json();
    $("verify").textContent = JSON.stringify(report, null, 2);
    $("verify-box").hidden = false;
  } catch (error) { $("verify").textContent = error.message; }
}

async function listVideos() {
  if (!apiKey()) return;
  let page;
  try {
    page = await (await api("/v1/videos?limit=50&order=desc")).json();
  } catch (error) {
    $("key-state").textContent = error.message;
    return;
  }
  const rows = $("videos");
  rows.replaceChildren();
  for (const video of page.data) {
    const row = document.createElement("tr");
    const created = new Date(video.created_at * 1000).toLocaleString();
    for (const text of [created, video.prompt, `${video.status} ${video.progress}%`, video.size, video.seconds]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    const actions = document.createElement("td");
    const open = document.createElement("button");
    open.textContent = "open";
    open.type = "button";
    open.onclick = () => follow(video.id);
    const remove = document.createElement("button");
    remove.textContent = "delete";
    remove.type = "button";
    remove.onclick = async () => {
      await api(`/v1/videos/${video.id}`, { method: "DELETE" }).catch((e) => showError(e.message));
      listVideos();
    };
    actions.append(open, remove);
    row.appendChild(actions);
    rows.appendChild(row);
  }
}

$("save-key").onclick = () => {
  localStorage.setItem("kinema.apiKey", $("key").value.trim());
  $("key").value = "";
  showKeyState();
  listVideos();
};
$("create").addEventListener("submit", submit);
$("refresh").onclick = listVideos;
showKeyState();
listVideos();
