// The rendered mix under the piano rolls: waveform or spectrogram (fetched from the server), with every voice's
// f0 curve (log-frequency axis, 30 Hz .. 8 kHz, the spectrogram's) and loudness curve (dB, dashed) drawn over it.
// Also the time ruler.

const F_LO = 30, F_HI = 8000, DB_LO = -90, DB_HI = 0;
export const VOICE_COLOURS = ["#ffb454", "#7ee787", "#79c0ff", "#f778ba", "#d2a8ff", "#ffd34f", "#56d4dd", "#ff7b72"];

function viridis(v) {   // 0..255 -> [r, g, b], a compact dark-blue .. yellow ramp
  const t = Math.pow(v / 255, 2.2);   // gamma: keep the quiet bins dark
  return [Math.round(255 * Math.min(1, Math.max(0, 1.6 * t * t - 0.2 * t))),
          Math.round(255 * Math.min(1, 0.1 + 0.9 * t)),
          Math.round(255 * Math.min(1, Math.max(0, 0.35 + 0.9 * t - 1.1 * t * t)))];
}

export class AudioView {
  constructor(canvas, ruler, app) {
    this.canvas = canvas;
    this.ruler = ruler;
    this.app = app;
    this.samples = null;      // Float32Array of the mix
    this.sampleRate = 16000;
    this.curves = null;       // {frame_rate, voices: [{f0_hz, loudness_db}]}
    this.spec = null;         // {key, width, height, data}
    this.pending = null;
  }

  setAudio(buffer) { this.samples = buffer.getChannelData(0); this.sampleRate = buffer.sampleRate; this.spec = null; }
  setCurves(curves) { this.curves = curves; }

  fy(f, H) { return H * (1 - Math.log(f / F_LO) / Math.log(F_HI / F_LO)); }
  dby(db, H) { return H * (1 - (db - DB_LO) / (DB_HI - DB_LO)); }

  size(c, H) {
    const dpr = window.devicePixelRatio || 1, W = c.clientWidth;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
      c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [g, W];
  }

  drawRuler() {
    const H = 22, [g, W] = this.size(this.ruler, H), { t0, pps } = this.app.view;
    g.fillStyle = "#1b1e24"; g.fillRect(0, 0, W, H);
    const step = pps > 60 ? 1 : pps > 15 ? 5 : 10;
    g.fillStyle = "#8a93a3"; g.font = "10px sans-serif";
    for (let t = Math.ceil(t0 / step) * step; (t - t0) * pps < W; t += step) {
      const x = (t - t0) * pps;
      g.fillRect(x, H - 6, 1, 6);
      const m = Math.floor(t / 60), s = t % 60;
      g.fillText(`${m}:${String(s).padStart(2, "0")}`, x + 3, H - 8);
    }
  }

  draw() {
    this.drawRuler();
    const H = 170, [g, W] = this.size(this.canvas, H), { t0, pps } = this.app.view;
    const t1 = t0 + W / pps;
    g.fillStyle = "#0f1114"; g.fillRect(0, 0, W, H);
    if (this.app.viewMode === "spectrogram") this.drawSpectrogram(g, W, H, t0, t1);
    else this.drawWaveform(g, W, H, t0, pps);
    this.drawCurves(g, W, H, t0, pps);
    g.fillStyle = "#8a93a3"; g.font = "10px sans-serif";
    g.fillText(this.app.viewMode === "spectrogram" ? "spectrogram · f0 (solid) · loudness (dashed)"
                                                   : "waveform · f0 (solid, log Hz) · loudness (dashed, dB)", 6, 12);
  }

  drawWaveform(g, W, H, t0, pps) {
    if (!this.samples) return;
    const x = this.samples, sr = this.sampleRate, mid = H / 2;
    g.fillStyle = "#3d6f9e";
    for (let px = 0; px < W; px++) {
      const a = Math.max(0, Math.floor((t0 + px / pps) * sr)), b = Math.min(x.length, Math.floor((t0 + (px + 1) / pps) * sr));
      if (a >= x.length) break;
      let lo = 0, hi = 0;
      for (let i = a; i < b; i++) { const v = x[i]; if (v < lo) lo = v; else if (v > hi) hi = v; }
      g.fillRect(px, mid - hi * mid, 1, Math.max(1, (hi - lo) * mid));
    }
  }

  drawSpectrogram(g, W, H, t0, t1) {
    const dpr = 1, width = Math.max(8, Math.min(4096, Math.round(W * dpr))), height = 128;
    const key = `${this.app.audioVersion}:${t0.toFixed(3)}:${t1.toFixed(3)}:${width}`;
    if (this.spec && this.spec.key === key) {
      const img = g.createImageData(width, height), d = img.data;
      for (let i = 0; i < width * height; i++) {
        const [r, gg, b] = viridis(this.spec.data[i]);
        d[4 * i] = r; d[4 * i + 1] = gg; d[4 * i + 2] = b; d[4 * i + 3] = 255;
      }
      createImageBitmap(img).then((bm) => { g.drawImage(bm, 0, 0, W, H); this.drawCurves(g, W, H, t0, this.app.view.pps); });
      return;
    }
    if (this.pending === key) return;
    this.pending = key;
    this.app.api.getSpectrogram(t0, t1, width, height).then((s) => {
      this.spec = { key, ...s };
      this.pending = null;
      this.draw();
    }).catch(() => { this.pending = null; });
  }

  drawCurves(g, W, H, t0, pps) {
    if (!this.curves) return;
    const fr = this.curves.frame_rate;
    const a = Math.max(0, Math.floor(t0 * fr)), b = Math.ceil((t0 + W / pps) * fr);
    this.curves.voices.forEach((v, k) => {
      g.strokeStyle = VOICE_COLOURS[k % VOICE_COLOURS.length];
      g.lineWidth = 1.6;
      g.setLineDash([]);
      g.beginPath();
      let pen = false;
      for (let i = a; i < Math.min(b, v.f0_hz.length); i++) {
        const loud = v.loudness_db[i], f = v.f0_hz[i];
        if (loud < -70 || f < F_LO) { pen = false; continue; }   // unvoiced or silent: no pitch to show
        const px = (i / fr - t0) * pps, py = this.fy(f, H);
        if (pen) g.lineTo(px, py); else g.moveTo(px, py);
        pen = true;
      }
      g.stroke();
      g.globalAlpha = 0.6;
      g.setLineDash([3, 3]);
      g.beginPath();
      for (let i = a; i < Math.min(b, v.loudness_db.length); i++) {
        const px = (i / fr - t0) * pps, py = this.dby(Math.max(DB_LO, v.loudness_db[i]), H);
        if (i === a) g.moveTo(px, py); else g.lineTo(px, py);
      }
      g.stroke();
      g.setLineDash([]);
      g.globalAlpha = 1;
    });
  }
}
