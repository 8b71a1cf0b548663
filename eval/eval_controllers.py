"""Measured effect of MIDI controllers, the soundfont fallback and the MIDI export round trip (issue 17).

    python eval/eval_controllers.py [--checkpoint DIR] [--out DIR] [--seed 0] [--json FILE]

Writes small MIDI files (mido), renders them with the model (default: the shipped checkpoints/) through
:func:`midi_ddsp.controller_render.render_midi`, and measures the audio with the project's own analysers:

1. bend: a violin A4, 3 s, pitch bend 0 -> +2 semitones (full range, GM default +-2) from 1.0 to 2.0 s;
   median tracked f0 (``estimate_f0``, dry render) after minus before the bend, in cents (target 200 +- 30).
2. CC11: a violin A4, 4 s, CC11 ramp 30 -> 127 from 0.5 to 3.5 s; A-weighted loudness rise (last minus
   first 0.3 s of the ramp, dB; target >= 8) and Pearson r of loudness with time over the ramp (>= 0.9).
3. CC1: a violin A4, 6 s, CC1 0 until 3 s then 127; vibrato depth (semitones, the note-level definition
   on the tracked f0) of 0.7-2.9 s and 3.3-5.5 s, and their ratio (target >= 2).
4. fallback: a violin melody over a drum track (kick and snare every 0.5 s) with the system GM soundfont;
   drum level in the mix (dB relative to the violin stem) and hit onsets vs. the MIDI times (ms; |.| <= 10),
   next to the violin's onsets vs. its notes.
5. round trip: the bend+CC11 file rendered, exported with --export-midi, read back and rendered again:
   notes equal, largest control / f0 / loudness difference, correlation of the two mixes.
6. unchanged: a file without controllers (and one with only reset values) renders bit-identically to
   ``model.render``.
7. sustain on a chordal track: a piano (program 0, rendered by strings) arpeggio C4 E4 G4 of 0.5 s notes
   under the pedal (0.1 -> 2.5 s); voices rendered, and each fundamental's level (dB re. the spectrum's
   peak) in 1.7-2.3 s, after every key's release: all three still sound.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _midi(path, events, program=40, extra=()):
    """events: [(time_s, mido message)] on channel 0 of one track; extra: [(events, program, channel)]."""
    import mido

    tempo, tpb = 500_000, 960
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    head = mido.MidiTrack()
    head.append(mido.MetaMessage("set_tempo", tempo=tempo))
    mid.tracks.append(head)
    for evs, prog, ch in [(events, program, 0)] + list(extra):
        tr = mido.MidiTrack()
        tr.append(mido.Message("program_change", program=prog, channel=ch))
        last = 0
        for t, msg in sorted(evs, key=lambda e: e[0]):
            tick = int(round(t * 1e6 / tempo * tpb))
            tr.append(msg.copy(channel=ch, time=tick - last))
            last = tick
        mid.tracks.append(tr)
    mid.save(str(path))
    return path


def note(p, s, e, v=100):
    import mido

    return [(s, mido.Message("note_on", note=p, velocity=v)), (e, mido.Message("note_off", note=p, velocity=0))]


def cc(t, c, v):
    import mido

    return (t, mido.Message("control_change", control=c, value=int(v)))


def bend(t, v):
    import mido

    return (t, mido.Message("pitchwheel", pitch=int(v)))


def bend_file(path):
    evs = note(69, 0.2, 3.0) + [bend(1.0 + i / 100, round(8191 * i / 100)) for i in range(101)]
    return _midi(path, evs)


def cc11_file(path):
    evs = note(69, 0.2, 4.0) + [cc(0.5 + i * 0.03, 11, round(30 + 97 * i / 100)) for i in range(101)] + [cc(0, 11, 30)]
    return _midi(path, evs)


def cc1_file(path):
    return _midi(path, note(69, 0.2, 6.0) + [cc(0, 1, 0), cc(3.0, 1, 127)])


DRUM_TIMES = [0.5 + 0.5 * i for i in range(8)]


def drum_file(path):
    melody = note(72, 0.5, 1.1) + note(74, 1.5, 2.1) + note(76, 2.5, 3.1) + note(77, 3.5, 4.1)
    drums = []
    for i, t in enumerate(DRUM_TIMES):
        drums += note(36 if i % 2 == 0 else 38, t, t + 0.1, 110)
    return _midi(path, melody, extra=[(drums, 0, 9)])


def frames_of(x, sr, fr=250):
    from midi_ddsp.synthesis.ddsp.features import a_weighted_loudness
    import torch

    return a_weighted_loudness(torch.from_numpy(np.asarray(x, np.float32))[None], sr, fr)[0, :, 0].numpy()


def tracked_semitones(x, sr):
    from midi_ddsp.synthesis.ddsp.features import estimate_f0

    f0, conf = estimate_f0(np.asarray(x, np.float32), sr, 250.0, fmin=150.0, fmax=1500.0)
    return 69.0 + 12.0 * np.log2(np.maximum(f0, 1e-3) / 440.0), conf


def onset_times(x, sr, nominal, window_s=0.2, rel_db=-20.0):
    """Per nominal time, the first sample within [t - 50 ms, t + window) whose envelope reaches rel_db below
    the window's peak; returns the offsets in ms."""
    env = np.abs(np.asarray(x, np.float64))
    out = []
    for t in nominal:
        a, b = max(0, int((t - 0.05) * sr)), int((t + window_s) * sr)
        seg = env[a:b]
        if seg.size == 0 or seg.max() <= 0:
            out.append(np.nan)
            continue
        i = int(np.argmax(seg >= seg.max() * 10 ** (rel_db / 20)))
        out.append(1000.0 * ((a + i) / sr - t))
    return np.array(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="keep the MIDI files and renders here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    from midi_ddsp.controller_render import render_midi
    from midi_ddsp.io.audio import write_audio
    from midi_ddsp.io.midi_export import export_midi
    from midi_ddsp.note_level.expression import vibrato_depth
    from midi_ddsp.pipeline import MidiDDSP

    model = MidiDDSP.from_pretrained(args.checkpoint)
    sr = model.sample_rate
    tmp = tempfile.TemporaryDirectory()
    out = args.out or Path(tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    t_all = time.perf_counter()

    # 1. pitch bend
    r = render_midi(model, bend_file(out / "bend.mid"), seed=args.seed, reverb=False)
    st, conf = tracked_semitones(r.mix, sr)
    t = np.arange(st.size) / 250.0
    before = np.median(st[(t > 0.5) & (t < 0.95) & (conf > 0.5)])
    after = np.median(st[(t > 2.1) & (t < 2.9) & (conf > 0.5)])
    figures["bend_rise_cents"] = float(100 * (after - before))
    print(f"1. pitch bend +2 st over 1 s: tracked f0 rises {figures['bend_rise_cents']:.1f} cents (target 200 +- 30)")

    # 2. CC11 ramp
    r = render_midi(model, cc11_file(out / "cc11.mid"), seed=args.seed, reverb=False)
    loud = frames_of(r.mix, sr)
    t = np.arange(loud.size) / 250.0
    ramp = (t >= 0.5) & (t <= 3.5)
    first, last = loud[(t >= 0.5) & (t < 0.8)].mean(), loud[(t > 3.2) & (t <= 3.5)].mean()
    figures["cc11_rise_db"] = float(last - first)
    figures["cc11_r"] = float(np.corrcoef(t[ramp], loud[ramp])[0, 1])
    print(f"2. CC11 30 -> 127 over 3 s: loudness rises {figures['cc11_rise_db']:.1f} dB (>= 8), "
          f"r with time {figures['cc11_r']:.3f} (>= 0.9)")

    # 3. CC1 step
    r = render_midi(model, cc1_file(out / "cc1.mid"), seed=args.seed, reverb=False)
    st, conf = tracked_semitones(r.mix, sr)
    dev = np.where(conf > 0.3, st - 69.0, 0.0)
    s, e = np.array([int(0.7 * 250), int(3.3 * 250)]), np.array([int(2.9 * 250), int(5.5 * 250)])
    depth = vibrato_depth(dev, s, e, 250.0)
    figures["cc1_depth_before_st"], figures["cc1_depth_after_st"] = float(depth[0]), float(depth[1])
    figures["cc1_depth_ratio"] = float(depth[1] / max(depth[0], 1e-4))
    print(f"3. CC1 0 -> 127 in a 6 s note: vibrato depth {depth[0]:.3f} -> {depth[1]:.3f} semitones, "
          f"x{figures['cc1_depth_ratio']:.1f} (>= 2)")

    # 4. drum fallback
    try:
        r = render_midi(model, drum_file(out / "drums.mid"), seed=args.seed, fallback_soundfont="auto", reverb=False)
        violin, drums = r.stems[0], r.stems[-1]
        level = 10 * np.log10(np.mean(drums ** 2) / max(np.mean(violin ** 2), 1e-12))
        d_on = onset_times(drums, sr, DRUM_TIMES, window_s=0.1)
        v_on = onset_times(violin, sr, [0.5, 1.5, 2.5, 3.5], window_s=0.15)  # notes after rests, dry
        figures["drum_level_vs_violin_db"] = float(level)
        figures["drum_onset_ms_max_abs"] = float(np.nanmax(np.abs(d_on)))
        figures["drum_onset_ms_median"] = float(np.nanmedian(d_on))
        figures["violin_onset_ms_median"] = float(np.nanmedian(v_on))
        print(f"4. drums through the soundfont: {level:+.1f} dB vs the violin stem; hit onsets "
              f"{np.nanmin(d_on):+.1f}..{np.nanmax(d_on):+.1f} ms (median {np.nanmedian(d_on):+.1f}) from the MIDI "
              f"times, violin onsets median {np.nanmedian(v_on):+.1f} ms; stems: {r.stem_labels}")
        if args.out:
            write_audio(out / "drums_mix.wav", r.mix, sr)
    except Exception as ex:  # noqa: BLE001 - a machine without fluidsynth still prints the rest
        print(f"4. drums: not measured ({ex})")

    # 5. round trip
    src = _midi(out / "both.mid", note(69, 0.2, 1.5) + note(72, 1.5, 3.0) + note(74, 3.2, 4.0)
                + [bend(0.6 + i / 50, round(-4096 * i / 25)) for i in range(26)] + [bend(1.5, 0)]
                + [cc(0.2 + 0.05 * i, 11, 40 + i) for i in range(60)] + [cc(0, 64, 127), cc(3.1, 64, 0)])
    r1 = render_midi(model, src, seed=args.seed)
    export_midi(out / "exported.mid", r1.performances, r1.params, model.frame_rate)
    r2 = render_midi(model, out / "exported.mid", seed=args.seed)
    same_notes = all(a.sequence.notes == b.sequence.notes for a, b in zip(r1.performances, r2.performances))
    dctl = max(float(np.abs(np.clip(a.controls, 0, 1) - b.controls).max()) for a, b in zip(r1.performances, r2.performances))
    nf = min(r1.params[0].n_frames, r2.params[0].n_frames)  # the re-imported file may end a few frames apart
    f1, f2 = r1.params[0].f0_hz[0, :nf, 0].numpy(), r2.params[0].f0_hz[0, :nf, 0].numpy()
    a1 = 20 * np.log10(np.maximum(r1.params[0].amplitude[0, :nf, 0].numpy(), 1e-6))
    a2 = 20 * np.log10(np.maximum(r2.params[0].amplitude[0, :nf, 0].numpy(), 1e-6))
    ok = a1 > -63.5
    ns = min(r1.mix.size, r2.mix.size)
    figures.update(roundtrip_notes_equal=float(same_notes), roundtrip_control_err=dctl,
                   roundtrip_f0_err_cents=float(np.abs(1200 * np.log2(f2 / f1)).max()),
                   roundtrip_loudness_err_db=float(np.abs(a2 - a1)[ok].max()),
                   roundtrip_mix_corr=float(np.corrcoef(r1.mix[:ns], r2.mix[:ns])[0, 1]),
                   roundtrip_length_diff_ms=1000.0 * (r2.mix.size - r1.mix.size) / model.sample_rate)
    print(f"5. export -> re-import -> render: notes equal {same_notes}, controls within {dctl:.2e}, f0 within "
          f"{figures['roundtrip_f0_err_cents']:.3f} cents, loudness within {figures['roundtrip_loudness_err_db']:.4f} dB, "
          f"mix correlation {figures['roundtrip_mix_corr']:.4f} (lengths differ by "
          f"{figures['roundtrip_length_diff_ms']:+.0f} ms)")

    # 6. unchanged without controllers
    plain = _midi(out / "plain.mid", note(69, 0.2, 1.0) + note(72, 1.1, 2.0))
    reset = _midi(out / "reset.mid", note(69, 0.2, 1.0) + note(72, 1.1, 2.0)
                  + [cc(0, 1, 0), cc(0, 7, 100), cc(0, 11, 127), cc(0, 64, 0), bend(0, 0)])
    ref = model.render(plain, seed=args.seed).mix
    figures["unchanged_plain"] = float(np.array_equal(ref, render_midi(model, plain, seed=args.seed).mix))
    figures["unchanged_reset"] = float(np.array_equal(ref, render_midi(model, reset, seed=args.seed).mix))
    print(f"6. without controllers: identical to model.render {bool(figures['unchanged_plain'])}; "
          f"with only reset values {bool(figures['unchanged_reset'])}")

    # 7. sustain on a chordal track: a pedalled piano arpeggio C4 E4 G4 (0.5 s each, pedal 0.1 -> 2.5 s)
    arp = note(60, 0.0, 0.5) + note(64, 0.5, 1.0) + note(67, 1.0, 1.5) + [cc(0.1, 64, 127), cc(2.5, 64, 0)]
    r = render_midi(model, _midi(out / "pedal.mid", arp, program=0), seed=args.seed, reverb=False)
    seg = r.mix[int(1.7 * sr):int(2.3 * sr)].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    freqs = np.fft.rfftfreq(seg.size, 1 / sr)

    def level_db(midi_pitch):  # strongest bin within 30 cents of the fundamental, dB re. the spectrum's peak
        f = 440 * 2 ** ((midi_pitch - 69) / 12)
        band = (freqs > f * 2 ** (-0.3 / 12)) & (freqs < f * 2 ** (0.3 / 12))
        return 20 * np.log10(spec[band].max() / spec.max())

    levels = [level_db(p) for p in (60, 64, 67)]
    figures["pedal_voices"] = float(len(r.performances))
    figures["pedal_chord_min_db"] = float(min(levels))
    print(f"7. pedalled piano arpeggio: {len(r.performances)} voices; at 1.7-2.3 s (after every key's release) "
          f"C4 / E4 / G4 fundamentals at {levels[0]:.1f} / {levels[1]:.1f} / {levels[2]:.1f} dB re. the peak")
    print(f"({time.perf_counter() - t_all:.1f} s, model {model.path}, {sr} Hz)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
