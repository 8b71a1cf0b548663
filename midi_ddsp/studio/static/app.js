// The studio page: loads the session from the server, builds one piano roll per voice, the inspector (six
// control sliders, note fields, another take), playback and exports; every edit goes to the server, which
// re-renders the region it affects, then the page fetches the new audio and curves.
import * as api from "./api.js";
import { AudioView, VOICE_COLOURS } from "./audioview.js";
import { Player } from "./player.js";
import { PianoRoll } from "./roll.js";

const $ = (id) => document.getElementById(id);
const stored = (k, d) => localStorage.getItem(`studio.${k}`) ?? d;
const store = (k, v) => localStorage.setItem(`studio.${k}`, v);

const app = {
  api,
  state: null,
  perf: null,
  view: { t0: 0, pps: Number(stored("pps", 40)) },
  viewMode: stored("view", "waveform"),
  colourBy: stored("colourBy", "vibrato"),
  selection: new Set(),
  rolls: [],
  regions: [],
  audioVersion: -1,
  preview: null,          // {control, value} while a slider is dragged
  player: new Player(),
  ready: false,
  busy: 0,
  lastLatency: null,      // seconds from an edit request to decoded, playable audio
};
window.studio = app;      // for scripts and the browser tests

function notesOf(v) { return app.perf.voices[v].notes; }
function selected() { return [...app.selection].map((k) => k.split(":").map(Number)).sort((a, b) => a[0] - b[0] || a[1] - b[1]); }

app.colourOf = (n) => {
  if (app.colourBy === "voice") return "#4fa3ff";
  let v = n[app.colourBy];
  if (app.preview && app.preview.control === app.colourBy && app.preview.notes.has(n)) v = app.preview.value;
  const t = Math.max(0, Math.min(1, v));
  return `hsl(${Math.round(230 - 230 * t)}, 75%, ${48 + 8 * t}%)`;
};

app.select = (keys, additive) => {
  if (!additive) app.selection.clear();
  for (const k of keys) app.selection.add(k);
  updateInspector();
  drawRolls();
};

app.edit = async (edits) => {
  if (!edits.length) return;
  await mutate(() => api.editNotes(edits));
};

// ------------------------------------------------------------------------------------------- server round trips
async function mutate(call) {
  const t = performance.now();
  setBusy(1);
  try {
    const result = await call();
    if (result.selected && result.selected.length) app.select(result.selected.map(([v, i]) => `${v}:${i}`), false);
    await refresh(result, t);
    $("message").textContent = "";
  } catch (e) {
    $("message").textContent = e.message;
    await refresh(null, null);   // the server kept the performance as it was: show that
  } finally {
    setBusy(-1);
  }
}

function setBusy(d) { app.busy += d; document.body.classList.toggle("busy", app.busy > 0); }

async function refresh(state, t) {
  const [st, perf, curves] = await Promise.all([state ? Promise.resolve(state) : api.getJSON("/api/state"),
    api.getJSON("/api/performance"), api.getJSON("/api/curves")]);
  app.state = st;
  app.perf = perf;
  for (const k of [...app.selection]) {
    const [v, i] = k.split(":").map(Number);
    if (!perf.voices[v] || i >= perf.voices[v].notes.length) app.selection.delete(k);
  }
  if (st.audio_version !== app.audioVersion) {
    const buffer = await api.getAudio();
    await app.player.load(buffer);
    app.audioView.setAudio(app.player.buffer);
    app.audioVersion = st.audio_version;
  }
  app.audioView.setCurves(curves);
  app.regions = (st.last_render && st.last_render.regions) || [];
  if (t !== null) app.lastLatency = (performance.now() - t) / 1000;
  buildVoices();
  updateToolbar();
  updateInspector();
  drawAll();
}

// --------------------------------------------------------------------------------------------------- layout
function buildVoices() {
  const box = $("voices");
  if (app.rolls.length !== app.perf.voices.length) {
    box.innerHTML = "";
    app.rolls = app.perf.voices.map((_, v) => {
      const sec = document.createElement("section");
      sec.className = "voice";
      sec.innerHTML = `<div class="voice-head"><span class="swatch">●</span><span class="name"></span>
        <label>instrument <select class="inst"></select></label><span class="count"></span></div>
        <canvas class="roll" data-voice="${v}"></canvas>`;
      sec.querySelector(".swatch").style.color = VOICE_COLOURS[v % VOICE_COLOURS.length];
      const sel = sec.querySelector(".inst");
      for (const name of app.state.instruments) sel.add(new Option(name, name));
      sel.addEventListener("change", () => mutate(() => api.setInstrument(v, sel.value)));
      box.appendChild(sec);
      return { roll: new PianoRoll(sec.querySelector("canvas"), v, app), sec };
    });
  }
  app.perf.voices.forEach((voice, v) => {
    const { roll, sec } = app.rolls[v];
    roll.setNotes(voice.notes);
    sec.querySelector(".name").textContent = voice.name || `voice ${v + 1}`;
    sec.querySelector(".inst").value = voice.instrument;
    sec.querySelector(".count").textContent = `${voice.notes.length} notes`;
  });
}

function updateToolbar() {
  const st = app.state;
  $("undo").disabled = !st.can_undo;
  $("redo").disabled = !st.can_redo;
  $("undo").title = st.can_undo ? `Undo ${st.undo_label} (Ctrl+Z)` : "Nothing to undo";
  $("source").textContent = st.source_name;
  $("retake").disabled = !st.can_retake || app.selection.size === 0;
  const lr = st.last_render || {};
  const lines = [`${st.voices.length} voices · ${st.duration_s.toFixed(1)} s at ${st.sample_rate} Hz`];
  if (lr.kind && lr.kind !== "none") {
    const where = lr.regions && lr.regions.length
      ? ` (${lr.regions.map(([v, a, b]) => `voice ${v + 1} ${a.toFixed(2)}–${b.toFixed(2)} s`).join(", ")})` : "";
    lines.push(`last render: ${lr.kind}${where} in ${lr.seconds.toFixed(2)} s`);
  }
  if (app.lastLatency !== null) lines.push(`edit → playable audio: ${app.lastLatency.toFixed(2)} s`);
  if (st.warnings && st.warnings.length) lines.push(...st.warnings.slice(0, 3));
  $("status").textContent = lines.join("\n");
  const max = Math.max(0, st.duration_s - visibleSeconds());
  $("scroll").max = String(Math.round(max * 100));
  $("scroll").value = String(Math.round(app.view.t0 * 100));
}

function buildInspector() {
  const box = $("sliders");
  for (const c of app.state.controls) {
    const label = document.createElement("label");
    label.innerHTML = `<span>${c.replace("_", " ")}</span><input type="range" min="0" max="1" step="0.01"
      data-control="${c}" aria-label="${c}"><output></output>`;
    const input = label.querySelector("input"), out = label.querySelector("output");
    input.addEventListener("input", () => {
      out.textContent = Number(input.value).toFixed(2);
      app.preview = { control: c, value: Number(input.value), notes: new Set(selected().map(([v, i]) => notesOf(v)[i])) };
      drawRolls();
    });
    input.addEventListener("change", () => {
      app.preview = null;
      const value = Number(input.value);
      app.edit(selected().map(([voice, note]) => ({ voice, note, [c]: value })));
    });
    box.appendChild(label);
  }
  const sel = $("colour-by");
  for (const c of [...app.state.controls, "voice"]) sel.add(new Option(c === "voice" ? "(none)" : c, c));
  sel.value = app.colourBy;
}

function updateInspector() {
  const sel = selected();
  $("retake").disabled = !app.state || !app.state.can_retake || sel.length === 0;
  if (!sel.length) {
    $("sel-info").textContent = "Click a note (Shift+click or drag a box for several).";
  } else {
    const [v, i] = sel[0];
    const n = notesOf(v)[i];
    $("sel-info").textContent = sel.length === 1
      ? `Voice ${v + 1}, note ${i + 1}: pitch ${n.pitch}, ${n.onset_s.toFixed(2)}–${n.offset_s.toFixed(2)} s`
      : `${sel.length} notes selected`;
  }
  for (const input of document.querySelectorAll("#sliders input")) {
    const c = input.dataset.control;
    input.disabled = sel.length === 0;
    const vals = sel.map(([v, i]) => notesOf(v)[i][c]);
    const mean = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : 0;
    if (!app.preview) input.value = String(mean);
    input.nextElementSibling.textContent = vals.length ? mean.toFixed(2) : "–";
  }
  const one = sel.length === 1 ? notesOf(sel[0][0])[sel[0][1]] : null;
  for (const [id, key] of [["f-pitch", "pitch"], ["f-onset", "onset_s"], ["f-offset", "offset_s"]]) {
    $(id).disabled = !one;
    $(id).value = one ? String(key === "pitch" ? one[key] : one[key].toFixed(3)) : "";
  }
}

function visibleSeconds() { return ($("tracks").clientWidth || 800) / app.view.pps; }

function drawRolls() { for (const { roll } of app.rolls) roll.draw(); }
function drawAll() { drawRolls(); app.audioView.draw(); drawCursor(); }

function drawCursor() {
  const t = app.player.now();
  const x = (t - app.view.t0) * app.view.pps;
  $("cursor").style.left = `${x}px`;
  $("cursor").dataset.time = t.toFixed(3);
  if (app.player.playing && x > $("tracks").clientWidth * 0.9) {   // follow the playback
    app.view.t0 = Math.max(0, t - visibleSeconds() * 0.1);
    drawRolls(); app.audioView.draw(); updateToolbar();
  }
}

function tick() { drawCursor(); requestAnimationFrame(tick); }

// ----------------------------------------------------------------------------------------------- controls
function loopRange() {
  if (!$("loop").checked) return null;
  const sel = selected();
  if (!sel.length) return [0, app.player.duration];
  const ns = sel.map(([v, i]) => notesOf(v)[i]);
  return [Math.max(0, Math.min(...ns.map((n) => n.onset_s)) - 0.2), Math.max(...ns.map((n) => n.offset_s)) + 0.5];
}

function togglePlay() {
  if (app.player.playing) { app.player.halt(); $("play").textContent = "▶ Play"; }
  else { app.player.play(app.player.position, loopRange()); $("play").textContent = "❚❚ Pause"; }
}

function wire() {
  $("play").addEventListener("click", togglePlay);
  $("stop").addEventListener("click", () => { app.player.stop(); $("play").textContent = "▶ Play"; });
  $("loop").addEventListener("change", () => { if (app.player.playing) app.player.play(app.player.now(), loopRange()); });
  $("undo").addEventListener("click", () => mutate(api.undo));
  $("redo").addEventListener("click", () => mutate(api.redo));
  $("open-btn").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", () => {
    const f = $("file").files[0];
    if (!f) return;
    if (f.size > app.state.max_upload_bytes) { $("message").textContent = `${f.name} is larger than the upload limit`; return; }
    app.selection.clear();
    mutate(() => api.openFile(f)).then(() => { app.view.t0 = 0; drawAll(); });
    $("file").value = "";
  });
  $("retake").addEventListener("click", () => {
    const t = Number($("temperature").value), s = Math.round(Number($("seed").value));
    mutate(() => api.retake(selected(), t, s)).then(() => { $("seed").value = String(s + 1); });
  });
  for (const [id, key] of [["f-pitch", "pitch"], ["f-onset", "onset_s"], ["f-offset", "offset_s"]]) {
    $(id).addEventListener("change", () => {
      const sel = selected();
      if (sel.length !== 1 || $(id).value === "") return;
      const value = key === "pitch" ? Math.round(Number($(id).value)) : Number($(id).value);
      app.edit([{ voice: sel[0][0], note: sel[0][1], [key]: value }]);
    });
  }
  $("colour-by").addEventListener("change", () => { app.colourBy = $("colour-by").value; store("colourBy", app.colourBy); drawRolls(); });
  $("view").value = app.viewMode;
  $("view").addEventListener("change", () => { app.viewMode = $("view").value; store("view", app.viewMode); app.audioView.draw(); });
  $("zoom").value = String(app.view.pps);
  $("zoom").addEventListener("input", () => { app.view.pps = Number($("zoom").value); store("pps", app.view.pps); updateToolbar(); drawAll(); });
  $("scroll").addEventListener("input", () => { app.view.t0 = Number($("scroll").value) / 100; drawAll(); });
  $("tracks").addEventListener("wheel", (e) => {
    if (e.ctrlKey) { app.view.pps = Math.max(8, Math.min(400, app.view.pps * (e.deltaY < 0 ? 1.15 : 1 / 1.15))); $("zoom").value = String(app.view.pps); }
    else if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) app.view.t0 = Math.max(0, app.view.t0 + (e.deltaX || e.deltaY) / app.view.pps);
    else return;
    e.preventDefault();
    updateToolbar(); drawAll();
  }, { passive: false });
  $("ruler").addEventListener("click", (e) => {
    const b = $("ruler").getBoundingClientRect();
    app.player.seek(app.view.t0 + (e.clientX - b.left) / app.view.pps);
  });
  window.addEventListener("resize", drawAll);
  window.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" && e.target.type !== "range" && e.target.type !== "checkbox") return;
    const mod = e.ctrlKey || e.metaKey;
    if (e.code === "Space") { e.preventDefault(); togglePlay(); }
    else if (mod && e.key.toLowerCase() === "z") { e.preventDefault(); mutate(e.shiftKey ? api.redo : api.undo); }
    else if (mod && e.key.toLowerCase() === "y") { e.preventDefault(); mutate(api.redo); }
    else if (e.key === "Escape") app.select([], false);
    else if ((e.key === "ArrowUp" || e.key === "ArrowDown") && app.selection.size && e.target.type !== "range") {
      e.preventDefault();
      const d = e.key === "ArrowUp" ? 1 : -1;
      app.edit(selected().map(([voice, note]) => ({ voice, note, pitch: Math.max(0, Math.min(127, notesOf(voice)[note].pitch + d)) })));
    }
  });
}

async function boot() {
  app.audioView = new AudioView($("audio-view"), $("ruler"), app);
  app.state = await api.getJSON("/api/state");
  buildInspector();
  wire();
  if (localStorage.getItem("studio.pps") === null) {   // first visit: fit the piece to the window
    app.view.pps = Math.max(8, Math.min(400, ($("tracks").clientWidth - 10) / Math.max(1, app.state.duration_s)));
  }
  await refresh(app.state, null);
  app.ready = true;
  document.body.dataset.ready = "1";
  requestAnimationFrame(tick);
}

boot().catch((e) => { $("message").textContent = `could not load the session: ${e.message}`; });
