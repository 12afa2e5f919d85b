// The page of `rag serve`: ask (streamed), open sources, add documents, see the index.
// Plain ES module, no build step. Every piece of text is inserted with textContent.

const KEY_STORE = "rag.apiKey";
const POLL_MS = 500;
const CITATION = /(\s*\[\d+(?:\s*[,;]\s*\d+)*\])/;
const STOP_WORDS = new Set(
  ("a an and are as at be been but by can do does for from has have how i if in into is it its " +
   "may more no not of on or so such than that the their then there these this those to was " +
   "we were what when where which who why will with you your").split(" "),
);

const $ = (id) => document.getElementById(id);
const state = { messages: [], busy: false, controller: null, openChip: null };

// ---------- small DOM helper ----------

/** Make an element: h("p", {class: "x", text: "y", onclick: f}, child...). Strings become text. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

function apiKey() {
  try { return localStorage.getItem(KEY_STORE) || ""; } catch { return ""; }
}

/** Fetch an API path (relative, so the page also works under a proxy prefix); throw ApiError
 * with a readable message on any failure. */
async function request(path, { method = "GET", json, body, signal } = {}) {
  const headers = {};
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("Cannot reach the rag server. Is `rag serve` still running?");
  }
  if (res.ok) return res;
  throw new ApiError(await errorMessage(res), res.status);
}

async function errorMessage(res) {
  let message = "";
  try {
    const data = await res.json();
    message = data?.error?.message || (typeof data?.detail === "string" ? data.detail : "");
  } catch { /* not JSON */ }
  if (res.status === 401) {
    showKeyForm();
    return `${sentence(capitalise(message || "This server needs an API key"))} Enter it above.`;
  }
  if (res.status === 429) {
    const wait = res.headers.get("Retry-After");
    const when = wait ? ` Try again in ${wait} s.` : " Try again in a moment.";
    return sentence(capitalise(message || "The server is busy")) + when;
  }
  return sentence(capitalise(message || `The server answered ${res.status} ${res.statusText}`));
}

/** Yield the `data` of each server-sent event in a streamed response body. */
async function* sseData(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        if (end < 0) break;
        if (buffer[end] === "\r" && end === buffer.length - 1) break; // "\r" may start "\r\n"
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (data.length) yield data.join("\n");
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
        } // comments (": ping") and other fields are ignored
      }
    }
    if (data.length) yield data.join("\n");
  } finally {
    reader.releaseLock();
  }
}

// ---------- notices, key, status ----------

function notify(message) {
  $("notice-text").textContent = message;
  $("notice").hidden = false;
}

function showKeyForm() {
  $("key-form").hidden = false;
  $("api-key").focus();
}

function label(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  return String(value.name ?? value.id ?? value.model ?? value.path ?? "");
}

async function refreshStatus() {
  const status = $("status");
  try {
    const s = await (await request("status")).json();
    const parts = [
      `${s.documents ?? "?"} documents`,
      `${s.chunks ?? "?"} chunks`,
      s.model && `model ${label(s.model)}${s.preset ? ` (${s.preset})` : ""}`,
      s.embedder && `embedder ${label(s.embedder)}`,
    ].filter(Boolean);
    status.textContent = parts.join(" · ");
    status.title = s.index ? `index: ${label(s.index)}` : "";
    status.classList.remove("bad");
  } catch (err) {
    status.textContent = err.status === 401 ? "API key needed" : "Status unavailable";
    status.title = err.message;
    status.classList.add("bad");
  }
}

function baseName(path) {
  return String(path).split(/[\\/]/).filter(Boolean).pop() || String(path);
}

async function refreshDocuments() {
  const list = $("doc-list");
  let docs;
  try {
    docs = (await (await request("documents")).json()).documents || [];
  } catch (err) {
    list.replaceChildren(h("li", { class: "muted", text: err.message }));
    return;
  }
  $("doc-count").textContent = `(${docs.length})`;
  if (!docs.length) {
    list.replaceChildren(h("li", { class: "muted", text: "No documents yet: add some above." }));
    return;
  }
  list.replaceChildren(...docs.map((doc) => {
    const facts = [doc.kind, doc.pages && `${doc.pages} p.`, `${doc.chunks} chunks`];
    return h("li", {},
      h("span", { class: "doc-name", title: doc.path, text: baseName(doc.path) }),
      h("span", { class: "muted", text: facts.filter(Boolean).join(" · ") }),
      h("button", {
        type: "button", class: "quiet small", text: "Remove",
        "aria-label": `Remove ${baseName(doc.path)} from the index`,
        onclick: () => removeDocument(doc),
      }));
  }));
}

async function removeDocument(doc) {
  const note = "A file that was uploaded through this page is deleted too.";
  if (!confirm(`Remove ${doc.path} from the index? ${note}`)) return;
  try {
    await request(`documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
  } catch (err) {
    notify(err.message);
  }
  refreshDocuments();
  refreshStatus();
}

// ---------- asking ----------

const STAGES = {
  retrieving: () => "Searching your documents…",
  reading: (d) => {
    const n = d.sources ?? d.n ?? d.count;
    return n === undefined ? "Reading sources…" : `Reading ${n} source${n === 1 ? "" : "s"}…`;
  },
  answering: () => "Answering…",
  verifying: () => "Checking the citations…",
};

function addTurn(question) {
  $("empty").hidden = true;
  const stage = h("p", { class: "stage", text: "Sending…" });
  const body = h("div", { class: "answer-text streaming" });
  const meta = h("div", { class: "meta" });
  const answer = h("div", { class: "a" }, stage, body, meta);
  const li = h("li", { class: "turn", "data-state": "streaming", "aria-busy": "true" },
    h("div", { class: "q" }, h("p", { text: question })), answer);
  $("turns").append(li);
  li.scrollIntoView({ block: "end", behavior: "smooth" });
  return { li, stage, body, meta, answer, question };
}

function setBusy(busy) {
  state.busy = busy;
  const send = $("send");
  send.textContent = busy ? "Stop" : "Ask";
  send.classList.toggle("stop", busy);
  send.setAttribute("aria-label", busy ? "Stop the answer" : "Ask");
}

async function ask(question) {
  const turn = addTurn(question);
  const messages = [...state.messages, { role: "user", content: question }];
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let streamed = "";
  let final = null;
  try {
    const res = await request("v1/chat/completions", {
      method: "POST", json: { messages, stream: true }, signal: controller.signal,
    });
    for await (const data of sseData(res)) {
      if (data.trim() === "[DONE]") break;
      let chunk;
      try { chunk = JSON.parse(data); } catch { continue; }
      if (chunk.error) throw new ApiError(chunk.error.message || "The answer failed.");
      if (chunk.event) {
        turn.stage.textContent = (STAGES[chunk.event] || (() => `${chunk.event}…`))(chunk.data || {});
        continue;
      }
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const piece = choice.delta?.content;
      if (piece) {
        streamed += piece;
        turn.body.append(piece);
      }
      if (choice.finish_reason) final = chunk;
    }
    if (!final) throw new ApiError("The answer stream ended before the answer was complete.");
    const answer = typeof final.answer === "string" ? final.answer : streamed;
    renderFinal(turn, { ...final, answer });
    state.messages = [...messages, { role: "assistant", content: answer }];
  } catch (err) {
    if (err.name === "AbortError") renderStopped(turn);
    else renderError(turn, err);
  } finally {
    turn.li.setAttribute("aria-busy", "false");
    if (state.controller === controller) state.controller = null;
    setBusy(false);
  }
}

function renderStopped(turn) {
  turn.li.dataset.state = "stopped";
  turn.body.classList.remove("streaming");
  turn.stage.textContent = "Stopped. This answer was not verified and is not kept.";
}

function renderError(turn, err) {
  turn.li.dataset.state = "error";
  turn.body.classList.remove("streaming");
  turn.stage.hidden = true;
  turn.answer.append(h("p", { class: "error", role: "alert", text: err.message }));
}

function renderFinal(turn, final) {
  turn.stage.hidden = true;
  turn.body.classList.remove("streaming");
  if (final.abstained) renderNotFound(turn, final);
  else renderAnswer(turn, final);
  renderMeta(turn, final);
}

function renderAnswer(turn, final) {
  turn.li.dataset.state = "answered";
  const sources = new Map((final.sources || []).map((s) => [s.n, s]));
  const sentences = final.sentences || [];
  const body = turn.body;
  body.replaceChildren();
  let segment = "";
  // split() with a capturing group alternates text and [n] markers: text at even indexes
  for (const [i, part] of final.answer.split(CITATION).entries()) {
    if (i % 2 === 0) {
      body.append(part);
      if (part.trim()) segment = part;
      continue;
    }
    const numbers = part.match(/\d+/g).map(Number);
    body.append(" ", h("span", { class: "chips" },
      numbers.map((n) => chip(n, sources.get(n), sentenceFor(segment, n, sentences)))));
  }
  const cited = [...new Set(sentences.flatMap((s) => s.citations || []))]
    .map((n) => sources.get(n)).filter(Boolean);
  if (cited.length) {
    turn.answer.insertBefore(
      h("ol", { class: "cited-list", "aria-label": "Cited sources" },
        cited.map((source) => h("li", {}, h("button", {
          type: "button", class: "passage-link",
          onclick: (e) => openSource(source, {
            sentence: sentences.find((s) => (s.citations || []).includes(source.n)),
            opener: e.currentTarget,
          }),
        }, h("span", { class: "num", text: String(source.n) }), where(source))))),
      turn.meta);
  }
}

/** The sentence a marker after `segment` belongs to: the verified sentence that ends the
 * segment, else the one citing n that shares most words with it, else the segment's tail. */
function sentenceFor(segment, n, sentences) {
  const tail = segment.trim();
  const ending = sentences.find((s) => s.text && tail.endsWith(s.text.trim()));
  if (ending) return ending;
  const citing = sentences.filter((s) => (s.citations || []).includes(n));
  let best = null;
  let bestScore = -1;
  for (const s of citing) {
    const score = overlap(words(s.text), new Set(words(tail)));
    if (score > bestScore) [best, bestScore] = [s, score];
  }
  if (best) return best;
  const pieces = tail.split(/(?<=[.!?])\s+/);
  return { text: pieces[pieces.length - 1] || tail, citations: [n] };
}

function chip(n, source, sentence) {
  if (!source) {
    return h("span", { class: "chip missing", title: `Source ${n} was not returned`, text: String(n) });
  }
  return h("button", {
    type: "button", class: "chip", "data-n": n, "aria-controls": "source-panel",
    "aria-label": `Source ${n}: ${baseName(source.path)}${placeOf(source) ? `, ${placeOf(source)}` : ""}`,
    title: `${source.path}${placeOf(source) ? ` · ${placeOf(source)}` : ""}`,
    text: String(n),
    onclick: (e) => openSource(source, { sentence, opener: e.currentTarget }),
  });
}

/** Where a source sits in its document: "page 3", "slide 2", "sheet Sales, rows 2–40". */
function placeOf(source) {
  return source.location || (source.page ? `page ${source.page}` : "");
}

function where(source) {
  const bits = [h("span", { class: "file", text: baseName(source.path) })];
  if (placeOf(source)) bits.push(h("span", { class: "page", text: ` · ${placeOf(source)}` }));
  return h("span", { class: "where-line" }, bits);
}

function renderNotFound(turn, final) {
  turn.li.dataset.state = "not-found";
  const nearest = final.nearest || [];
  const query = final.rewritten_question || turn.question;
  const reason = final.abstain_reason ? capitalise(final.abstain_reason) + "." : "";
  turn.body.replaceChildren(
    h("p", { class: "nf-title", text: "Not found in your documents" }),
    reason && h("p", { class: "nf-reason", text: reason }),
    nearest.length
      ? h("div", { class: "nearest" },
        h("p", { class: "muted", text: "The closest passages:" }),
        h("ol", {}, nearest.map((source) => h("li", {}, h("button", {
          type: "button", class: "passage-link", "aria-controls": "source-panel",
          onclick: (e) => openSource(source, { query, opener: e.currentTarget }),
        }, where(source), h("span", { class: "snippet", text: snippet(source.text) }))))))
      : h("p", { class: "muted", text: "No passage came close." }),
  );
  turn.answer.classList.add("not-found");
}

function renderMeta(turn, final) {
  const usage = final.usage || {};
  const bits = [];
  if (final.rewritten_question) {
    bits.push(h("span", { class: "rewritten" }, "searched for: ",
      h("q", { text: final.rewritten_question })));
  }
  const times = [];
  if (usage.ttft_s) times.push(`first token ${seconds(usage.ttft_s)}`);
  if (usage.total_s) times.push(`${seconds(usage.total_s)} total`);
  if (times.length) bits.push(h("span", { class: "usage", text: times.join(" · ") }));
  if (final.cached) bits.push(h("span", { class: "badge", title: "Served from the answer cache", text: "cached" }));
  turn.meta.replaceChildren(...bits);
}

const sentence = (s) => (/[.!?]$/.test(s) ? s : `${s}.`);
const seconds = (s) => `${Number(s).toFixed(s < 10 ? 1 : 0)} s`;
const capitalise = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const snippet = (text, max = 180) => {
  const flat = String(text || "").replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max).replace(/\s+\S*$/, "")}…` : flat;
};

// ---------- the source panel ----------

/** Lower-case content words of a text, with plural and verb endings cut ("cleaned" → "clean"). */
function words(text) {
  return (String(text).toLowerCase().match(/[\p{L}\p{N}]+/gu) || [])
    .filter((w) => w.length > 1 && !STOP_WORDS.has(w))
    .map((w) => (w.length > 4 ? w.replace(/(?:ing|ed|es|s)$/, "") : w));
}

function overlap(query, vocabulary) {
  return query.filter((w) => vocabulary.has(w)).length;
}

/** Sentence-like spans [start, end) of a text. */
function spans(text) {
  const out = [];
  for (const m of text.matchAll(/\S[\s\S]*?(?:[.!?](?=\s|$)|\n|$)/g)) {
    out.push([m.index, m.index + m[0].trimEnd().length]);
  }
  return out;
}

/** The span of `text` sharing most content words with `query`: {start, end, hits, of}. */
function bestSpan(text, query) {
  const wanted = [...new Set(words(query))];
  let best = null;
  for (const [start, end] of spans(text)) {
    const hits = overlap(wanted, new Set(words(text.slice(start, end))));
    if (hits > 0 && (!best || hits > best.hits)) best = { start, end, hits, of: wanted.length };
  }
  return best;
}

function openSource(source, { sentence = null, query = null, opener = null } = {}) {
  const panel = $("source-panel");
  const text = String(source.text || "");
  const matchOn = sentence ? sentence.text : query;
  const quote = sentence?.quote;  // the verifier's own supporting span, when it is in this source
  const verified = quote && quote.n === source.n && quote.end <= text.length && quote.start < quote.end;
  const span = verified ? { start: quote.start, end: quote.end }
    : matchOn ? bestSpan(text, matchOn) : null;

  $("source-title").textContent = sentence || !query ? `Source ${source.n ?? ""}`.trim()
    : "A close passage";
  const facts = [source.path];
  if (placeOf(source)) facts.push(placeOf(source));
  if (Number.isFinite(source.start) && Number.isFinite(source.end)) {
    facts.push(`characters ${source.start}–${source.end}`);
  }
  $("source-where").textContent = facts.join(" · ");

  const cited = $("source-cited");
  cited.hidden = !sentence;
  if (sentence) cited.replaceChildren(h("span", { class: "muted", text: "Cited for: " }), sentence.text);

  const body = $("source-text");
  if (span) {
    const mark = h("mark", { text: text.slice(span.start, span.end) });
    body.replaceChildren(text.slice(0, span.start), mark, text.slice(span.end));
    requestAnimationFrame(() => mark.scrollIntoView({ block: "nearest" }));
  } else {
    body.replaceChildren(text);
  }
  const what = sentence ? "the cited sentence" : "your question";
  $("source-note").textContent = verified
    ? "Highlighted: the part the citation check found supports the sentence."
    : span
      ? `Highlighted: the sentence here sharing most words with ${what} (${span.hits} of ${span.of}).`
      : matchOn ? `No sentence here shares a word with ${what}.` : "";

  state.openChip?.classList.remove("active");
  state.openChip = opener;
  opener?.classList.add("active");
  panel.hidden = false;
  document.body.classList.add("panel-open");
  panel.focus({ preventScroll: true });
}

function closeSource() {
  $("source-panel").hidden = true;
  document.body.classList.remove("panel-open");
  const opener = state.openChip;
  state.openChip = null;
  opener?.classList.remove("active");
  if (opener?.isConnected) opener.focus();
}

// ---------- uploading ----------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function upload(files) {
  if (!files.length) return;
  const box = $("job");
  box.hidden = false;
  $("job-report").replaceChildren();
  $("job-progress").removeAttribute("value"); // indeterminate while uploading
  $("job-text").textContent = `Uploading ${files.length} file${files.length === 1 ? "" : "s"}…`;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  try {
    const job = await (await request("ingest", { method: "POST", body: form })).json();
    await followJob(job);
  } catch (err) {
    box.dataset.state = "failed";
    $("job-progress").value = 0;
    $("job-text").textContent = `Upload failed: ${err.message}`;
  }
  refreshStatus();
  refreshDocuments();
}

async function followJob(job) {
  renderJob(job);
  while (job.state !== "done" && job.state !== "failed") {
    await sleep(POLL_MS);
    job = await (await request(`jobs/${encodeURIComponent(job.id)}`)).json();
    renderJob(job);
  }
}

function renderJob(job) {
  const box = $("job");
  box.dataset.state = job.state;
  const progress = $("job-progress");
  progress.max = Math.max(job.total || 0, 1);
  progress.value = job.state === "done" ? progress.max : job.done || 0;
  const text = {
    queued: "Queued…",
    running: `Indexing ${job.done ?? 0} of ${job.total ?? "?"}` +
      (job.current ? ` — ${baseName(job.current)}` : "") +
      (job.chunks ? ` · ${job.chunks} chunks` : ""),
    done: `Done: ${job.total ?? job.files?.length ?? 0} file${job.total === 1 ? "" : "s"} processed.`,
    failed: `Failed: ${job.error || "the ingest stopped."}`,
  }[job.state] || job.state;
  $("job-text").textContent = text;
  const report = job.report;
  if (!report) return;
  const counts = ["added", "updated", "unchanged", "skipped", "removed"]
    .filter((k) => typeof report[k] === "number")
    .map((k) => h("li", { class: `count ${k}` }, h("strong", { text: String(report[k]) }), ` ${k}`));
  const failed = report.failed || [];
  $("job-report").replaceChildren(h("div", {},
    h("ul", { class: "counts" }, counts),
    failed.length > 0 && h("div", { class: "failures" },
      h("p", { text: `${failed.length} failed:` }),
      h("ul", {}, failed.map((f) => h("li", {},
        h("span", { class: "file", text: baseName(f.path) }), " — ", String(f.error))))),
    report.error && h("p", { class: "error", text: report.error }),
    (report.warnings || []).map((w) => h("p", { class: "muted", text: w })),
  ));
}

// ---------- wiring ----------

function newConversation() {
  state.controller?.abort();
  state.messages = [];
  $("turns").replaceChildren();
  $("empty").hidden = false;
  if (!$("source-panel").hidden) closeSource();
  $("question").focus();
}

function wire() {
  const form = $("ask-form");
  const input = $("question");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (state.busy) return;
    const question = input.value.trim();
    if (!question) return;
    input.value = "";
    ask(question).then(() => input.focus());
  });
  $("send").addEventListener("click", (e) => {
    if (!state.busy) return; // a submit: ask
    e.preventDefault(); // "Stop": no form submission, whatever the textarea holds
    state.controller?.abort();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!state.busy) form.requestSubmit();
    }
  });
  $("new-chat").addEventListener("click", newConversation);
  $("source-close").addEventListener("click", closeSource);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("source-panel").hidden) closeSource();
  });
  $("notice-close").addEventListener("click", () => { $("notice").hidden = true; });

  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    try { localStorage.setItem(KEY_STORE, $("api-key").value.trim()); } catch { /* private mode */ }
    $("api-key").value = "";
    $("key-form").hidden = true;
    refreshStatus();
    refreshDocuments();
  });

  const files = $("files");
  files.addEventListener("change", () => {
    upload([...files.files]);
    files.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload([...e.dataTransfer.files]);
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      files.click();
    }
  });
}

wire();
refreshStatus();
refreshDocuments();
