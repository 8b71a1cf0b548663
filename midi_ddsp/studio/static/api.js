// HTTP calls to the studio server (same origin). Mutating calls carry X-Studio: 1 (the server requires it).

async function check(response) {
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

export async function getJSON(path) {
  return (await check(await fetch(path, { cache: "no-store" }))).json();
}

export async function send(method, path, body, contentType = "application/json") {
  const init = { method, headers: { "X-Studio": "1" } };
  if (body !== undefined) {
    init.body = contentType === "application/json" ? JSON.stringify(body) : body;
    init.headers["Content-Type"] = contentType;
  }
  return (await check(await fetch(path, init))).json();
}

export const editNotes = (edits) => send("PUT", "/api/performance", { edits });
export const setInstrument = (voice, instrument) =>
  send("PUT", "/api/performance", { instruments: [{ voice, instrument }] });
export const retake = (notes, temperature, seed) => send("POST", "/api/retake", { notes, temperature, seed });
export const undo = () => send("POST", "/api/undo");
export const redo = () => send("POST", "/api/redo");
export const openFile = (file) =>
  send("POST", `/api/open?name=${encodeURIComponent(file.name)}`, file, "application/octet-stream");

export async function getAudio() {
  return (await check(await fetch("/api/audio.wav", { cache: "no-store" }))).arrayBuffer();
}

export async function getSpectrogram(t0, t1, width, height) {
  const q = `t0=${t0.toFixed(3)}&t1=${t1.toFixed(3)}&width=${width}&height=${height}`;
  const r = await check(await fetch(`/api/spectrogram?${q}`, { cache: "no-store" }));
  return { width, height, data: new Uint8Array(await r.arrayBuffer()) };
}
