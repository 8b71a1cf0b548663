// The piano roll of one voice: time (x) by pitch (y); notes coloured by a control; click / Shift+click / box to
// select; drag a note to move it (time and pitch), drag its right edge to change its length.

const EDGE_PX = 6;       // grab zone of a note's right edge
const HEIGHT = 120;      // CSS pixels per voice
const SNAP_S = 0.01;     // times snap to 10 ms

const snap = (t) => Math.round(t / SNAP_S) * SNAP_S;

export class PianoRoll {
  /** canvas: the voice's canvas; voice: its index; app: view ({t0, pps}), selection (Set of "v:i"),
   * colourOf(note), edit(edits), select(keys, additive), regions (last re-rendered [voice, t0, t1]) */
  constructor(canvas, voice, app) {
    this.canvas = canvas;
    this.voice = voice;
    this.app = app;
    this.notes = [];
    this.drag = null;
    canvas.style.height = `${HEIGHT}px`;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
  }

  setNotes(notes) {
    this.notes = notes;
    const pitches = notes.map((n) => n.pitch);
    let lo = Math.min(...pitches, 127) - 2, hi = Math.max(...pitches, 0) + 2;
    if (!notes.length) { lo = 55; hi = 79; }
    while (hi - lo < 12) { lo -= 1; hi += 1; }
    this.lo = Math.max(0, lo);
    this.hi = Math.min(127, hi);
  }

  get rowH() { return HEIGHT / (this.hi - this.lo + 1); }
  x(t) { return (t - this.app.view.t0) * this.app.view.pps; }
  y(p) { return (this.hi - p) * this.rowH; }

  /** The note's rectangle in CSS pixels relative to the canvas (with the drag preview applied). */
  noteRect(i) {
    let { pitch, onset_s: on, offset_s: off } = this.notes[i];
    const d = this.drag;
    if (d && d.moved && this.app.selection.has(`${this.voice}:${i}`)) {
      if (d.mode === "move") { on += d.dt; off += d.dt; pitch += d.dp; } else if (d.mode === "resize") off += d.dt;
    }
    return { x: this.x(on), y: this.y(pitch), w: Math.max(2, (off - on) * this.app.view.pps), h: this.rowH };
  }

  hit(px, py) {
    for (let i = this.notes.length - 1; i >= 0; i--) {
      const r = this.noteRect(i);
      if (px >= r.x && px <= r.x + r.w && py >= r.y && py <= r.y + r.h) {
        return { i, edge: px >= r.x + r.w - EDGE_PX && r.w > 2 * EDGE_PX };
      }
    }
    return null;
  }

  local(e) {
    const b = this.canvas.getBoundingClientRect();
    return [e.clientX - b.left, e.clientY - b.top];
  }

  down(e) {
    const [px, py] = this.local(e);
    const h = this.hit(px, py);
    this.canvas.setPointerCapture(e.pointerId);
    const key = h ? `${this.voice}:${h.i}` : null;
    if (h && !this.app.selection.has(key)) this.app.select([key], e.shiftKey || e.ctrlKey || e.metaKey);
    this.drag = { mode: h ? (h.edge ? "resize" : "move") : "box", i: h ? h.i : -1, x0: px, y0: py, px, py,
                  dt: 0, dp: 0, moved: false, additive: e.shiftKey || e.ctrlKey || e.metaKey, key };
  }

  move(e) {
    const [px, py] = this.local(e);
    const d = this.drag;
    if (!d) {
      const h = this.hit(px, py);
      this.canvas.style.cursor = h ? (h.edge ? "ew-resize" : "grab") : "default";
      return;
    }
    d.px = px; d.py = py;
    d.moved = d.moved || Math.abs(px - d.x0) > 3 || Math.abs(py - d.y0) > 3;
    d.dt = snap((px - d.x0) / this.app.view.pps);
    d.dp = d.mode === "move" ? -Math.round((py - d.y0) / this.rowH) : 0;
    this.draw();
  }

  up(e) {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    if (!d.moved) {
      if (d.mode === "box") { if (!d.additive) this.app.select([], false); }
      else if (d.additive && this.app.selection.has(d.key)) { /* already added on pointerdown */ }
      else if (!d.additive) this.app.select([d.key], false);
      this.draw();
      return;
    }
    if (d.mode === "box") {
      const [x0, x1] = [Math.min(d.x0, d.px), Math.max(d.x0, d.px)];
      const [y0, y1] = [Math.min(d.y0, d.py), Math.max(d.y0, d.py)];
      const keys = [];
      this.notes.forEach((_, i) => {
        const r = this.noteRect(i);
        if (r.x < x1 && r.x + r.w > x0 && r.y < y1 && r.y + r.h > y0) keys.push(`${this.voice}:${i}`);
      });
      this.app.select(keys, d.additive);
      this.draw();
      return;
    }
    const edits = [];
    this.notes.forEach((n, i) => {
      if (!this.app.selection.has(`${this.voice}:${i}`)) return;
      if (d.mode === "move") {
        const dt = Math.max(d.dt, -n.onset_s);
        edits.push({ voice: this.voice, note: i, onset_s: snap(n.onset_s + dt), offset_s: snap(n.offset_s + dt),
                     pitch: Math.max(0, Math.min(127, n.pitch + d.dp)) });
      } else {
        edits.push({ voice: this.voice, note: i, offset_s: Math.max(snap(n.onset_s + 0.02), snap(n.offset_s + d.dt)) });
      }
    });
    this.app.edit(edits);
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(HEIGHT * dpr)) {
      c.width = Math.round(W * dpr); c.height = Math.round(HEIGHT * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#14161a";
    g.fillRect(0, 0, W, HEIGHT);
    for (let p = this.lo; p <= this.hi; p++) {   // black-key rows darker, C rows labelled
      if ([1, 3, 6, 8, 10].includes(p % 12)) { g.fillStyle = "#101215"; g.fillRect(0, this.y(p), W, this.rowH); }
      if (p % 12 === 0) {
        g.fillStyle = "#2b303a"; g.fillRect(0, this.y(p) + this.rowH - 1, W, 1);
        g.fillStyle = "#5d6573"; g.font = "10px sans-serif"; g.fillText(`C${p / 12 - 1}`, 2, this.y(p) + this.rowH - 2);
      }
    }
    const { t0, pps } = this.app.view;
    const step = pps > 60 ? 1 : pps > 15 ? 5 : 10;
    g.fillStyle = "#252a33";
    for (let t = Math.ceil(t0 / step) * step; this.x(t) < W; t += step) g.fillRect(this.x(t), 0, 1, HEIGHT);
    for (const [v, a, b] of this.app.regions) {   // where the last edit re-rendered
      if (v !== this.voice) continue;
      g.fillStyle = "rgba(79,163,255,0.08)";
      g.fillRect(this.x(a), 0, (b - a) * pps, HEIGHT);
    }
    this.notes.forEach((n, i) => {
      const r = this.noteRect(i);
      if (r.x > W || r.x + r.w < 0) return;
      const selected = this.app.selection.has(`${this.voice}:${i}`);
      g.fillStyle = this.app.colourOf(n);
      g.fillRect(r.x, r.y + 0.5, r.w, Math.max(1, r.h - 1));
      g.strokeStyle = selected ? "#ffffff" : "rgba(0,0,0,0.5)";
      g.lineWidth = selected ? 2 : 1;
      g.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, Math.max(1, r.h - 1));
    });
    const d = this.drag;
    if (d && d.mode === "box" && d.moved) {
      g.strokeStyle = "#4fa3ff"; g.lineWidth = 1;
      g.strokeRect(Math.min(d.x0, d.px) + 0.5, Math.min(d.y0, d.py) + 0.5, Math.abs(d.px - d.x0), Math.abs(d.py - d.y0));
    }
  }
}
