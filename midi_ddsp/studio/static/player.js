// Playback of the rendered mix with the Web Audio API: play from a time, stop, loop a range, report the position.

export class Player {
  constructor() {
    this.ctx = null;
    this.buffer = null;
    this.source = null;
    this.startedAt = 0;   // ctx time when playback started
    this.offset = 0;      // piece time at that moment (s)
    this.loop = null;     // [t0, t1] or null
    this.position = 0;    // piece time when stopped (s)
  }

  context() {
    if (!this.ctx) this.ctx = new AudioContext();
    return this.ctx;
  }

  async load(arrayBuffer) {
    const wasPlaying = this.playing;
    const at = this.now();
    const buffer = await this.context().decodeAudioData(arrayBuffer);
    this.buffer = buffer;
    if (wasPlaying) this.play(at, this.loop); // keep playing, now with the new audio
  }

  get playing() { return this.source !== null; }
  get duration() { return this.buffer ? this.buffer.duration : 0; }

  now() {
    if (!this.playing) return this.position;
    let t = this.offset + (this.ctx.currentTime - this.startedAt);
    if (this.loop) {
      const [a, b] = this.loop;
      if (t >= b) t = a + ((t - a) % (b - a));
    }
    return Math.min(t, this.duration);
  }

  play(from = this.position, loop = null) {
    if (!this.buffer) return;
    this.halt();
    const ctx = this.context();
    if (ctx.state === "suspended") ctx.resume();
    const src = ctx.createBufferSource();
    src.buffer = this.buffer;
    src.connect(ctx.destination);
    this.loop = loop;
    if (loop) {
      src.loop = true;
      src.loopStart = loop[0];
      src.loopEnd = loop[1];
      if (from < loop[0] || from >= loop[1]) from = loop[0];
    }
    from = Math.max(0, Math.min(from, this.duration - 1e-3));
    src.onended = () => { if (this.source === src) { this.source = null; this.position = 0; } };
    src.start(0, from);
    this.source = src;
    this.startedAt = ctx.currentTime;
    this.offset = from;
  }

  halt() {
    if (this.source) {
      const src = this.source;
      this.position = this.now();
      this.source = null;
      src.onended = null;
      src.stop();
    }
  }

  stop() { this.halt(); this.position = 0; }
  seek(t) { if (this.playing) this.play(t, this.loop); else this.position = t; }
}
