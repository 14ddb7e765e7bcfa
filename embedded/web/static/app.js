// skypipe's page: send a file into a pipe, take an item out of one.
// Plain JavaScript, no build step. The token lives in a variable of this
// page only and goes in the Authorization header, never in a URL.
"use strict";

const $ = (id) => document.getElementById(id);
let waiting = null; // the AbortController of a receive under way
let lastURL = null; // the object URL of the last item received

function token() { return $("token").value.trim(); }
function pipe() { return $("pipe").value; }
function pipeURL(name) { return "p/" + encodeURIComponent(name); }
function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

function say(msg, isError) {
  const s = $("status");
  s.textContent = msg;
  s.classList.toggle("error", !!isError);
  s.dataset.state = isError ? "error" : "ok";
}

function size(n) {
  const u = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

// The satellite says what went wrong as "skypipe: error: ..." lines.
async function reason(resp) {
  const text = (await resp.text()).trim();
  return text ? text.replace(/^skypipe: /gm, "") : resp.status + " " + resp.statusText;
}

async function list() {
  try {
    const resp = await fetch("pipes", { headers: headers(), cache: "no-store" });
    if (!resp.ok) { say(await reason(resp), true); return; }
    const pipes = await resp.json();
    const dl = $("pipes"), ul = $("pipelist");
    dl.replaceChildren();
    ul.replaceChildren();
    for (const p of pipes) {
      const o = document.createElement("option");
      o.value = p.name;
      dl.append(o);
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = p.name === "" ? "(default)" : p.name;
      b.addEventListener("click", () => { $("pipe").value = p.name; });
      li.append(b, " " + p.items + " item(s), " + size(p.bytes));
      ul.append(li);
    }
    say(pipes.length ? pipes.length + " pipe(s) keep items" : "no pipe keeps items");
  } catch (e) {
    say("cannot reach the satellite: " + e.message, true);
  }
}

// send uploads a file as one item, with XMLHttpRequest for its progress
// events; the browser streams the file from disk.
function send(file) {
  const name = pipe();
  const prog = $("sendprog");
  prog.hidden = false;
  prog.value = 0;
  say("sending " + file.name + " (" + size(file.size) + ") to pipe \"" + name + "\"");
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", pipeURL(name));
  const h = headers();
  for (const k in h) xhr.setRequestHeader(k, h[k]);
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) prog.value = e.loaded / e.total; };
  xhr.onload = () => {
    prog.hidden = true;
    if (xhr.status === 200) {
      const r = JSON.parse(xhr.responseText);
      say("sent " + file.name + ": " + size(r.bytes) + (r.kept ? ", kept in the pipe" : ", taken live"));
    } else {
      say(xhr.responseText.trim().replace(/^skypipe: /gm, "") || xhr.status + " " + xhr.statusText, true);
    }
  };
  xhr.onerror = () => { prog.hidden = true; say("the upload failed: the item was not sent whole", true); };
  xhr.send(file);
}

// receive takes the next item and saves it as a download once it is whole:
// a stream that ends in an error is a broken item, and nothing is saved.
async function receive() {
  const name = pipe();
  waiting = new AbortController();
  $("recv").disabled = true;
  $("cancel").hidden = false;
  $("saved").hidden = true;
  say("waiting for an item on pipe \"" + name + "\"");
  let got = 0;
  try {
    const resp = await fetch(pipeURL(name), { headers: headers(), cache: "no-store", signal: waiting.signal });
    if (!resp.ok) { say(await reason(resp), true); return; }
    const reader = resp.body.getReader();
    let parts = [], blob = new Blob([]), pending = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      got += value.length;
      pending += value.length;
      if (pending >= 8 << 20) { // let the browser move big items out of the page's memory
        blob = new Blob([blob, ...parts]);
        parts = [];
        pending = 0;
      }
      say("receiving from pipe \"" + name + "\": " + size(got));
    }
    blob = new Blob([blob, ...parts], { type: "application/octet-stream" });
    if (lastURL) URL.revokeObjectURL(lastURL);
    lastURL = URL.createObjectURL(blob);
    const a = $("download");
    a.href = lastURL;
    a.download = fileName(name);
    a.click();
    $("saved").hidden = false;
    say("received " + size(got) + " from pipe \"" + name + "\", saved as " + a.download);
  } catch (e) {
    if (e.name === "AbortError") {
      say(got ? "stopped after " + size(got) + ": nothing saved" : "stopped waiting", !!got);
    } else {
      say("broken item: " + size(got) + " arrived, then the stream failed (" + e.message + "); nothing saved", true);
    }
  } finally {
    waiting = null;
    $("recv").disabled = false;
    $("cancel").hidden = true;
  }
}

function fileName(name) {
  const f = name.replace(/[\x00-\x1f\x7f\/\\"]/g, "_");
  return f.replace(/\./g, "") === "" ? "item" : f;
}

window.addEventListener("DOMContentLoaded", () => {
  $("refresh").addEventListener("click", list);
  $("recv").addEventListener("click", receive);
  $("cancel").addEventListener("click", () => { if (waiting) waiting.abort(); });
  $("file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) send(f);
    e.target.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) send(f);
  });
  document.body.dataset.ready = "1";
});
