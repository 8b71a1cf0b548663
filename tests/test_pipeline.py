"""MidiDDSP, the Python API: levels, windowed (seamless) processing, mixing, reverb, seeds, transfer, errors.

Most tests use untrained models with small widths (a session fixture writes them in the shipped layout), so
they check the plumbing against independent references (analytic sines, delayed copies, exact equality with
whole-signal processing). The tests that need a model that follows its controls use the shipped checkpoints
and skip without them.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from midi_ddsp.checkpoint import CheckpointError, load_weights, save_weights
from midi_ddsp.errors import MidiDDSPError, MidiDDSPWarning
from midi_ddsp.note_level import Note, NoteSequence, Performance, from_csv, to_csv
from midi_ddsp.model_folder import GENERATOR_FILE
from midi_ddsp.pipeline import MidiDDSP
from midi_ddsp.random_models import write_random_checkpoints
from midi_ddsp.rendering import MIX_PEAK, mix_stems, noise_excitation
from midi_ddsp.results import RenderResult
from midi_ddsp.synthesis.ddsp.features import a_weighted_loudness, estimate_f0
from midi_ddsp.synthesis.params import SynthParams

from pipeline_helpers import checkpoint_dir, model, trained_model, two_track_midi  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

SR, HOP, FR = 16000, 64, 250.0


def perf(notes, instrument="violin", value=0.5, name="v"):
    seq = NoteSequence(tuple(Note(p, s, e) for p, s, e in notes), instrument, name)
    return Performance(seq, np.full((len(seq), 6), value))


def tone_params(f0_hz: np.ndarray, amplitude: np.ndarray, n_harmonics=60, n_bands=65) -> SynthParams:
    """A pure sine (first harmonic only), no noise: [1, F, ...]."""
    n = len(f0_hz)
    hd = torch.zeros(1, n, n_harmonics)
    hd[..., 0] = 1.0
    return SynthParams(torch.tensor(f0_hz, dtype=torch.float32)[None, :, None],
                       torch.tensor(amplitude, dtype=torch.float32)[None, :, None], hd,
                       torch.zeros(1, n, n_bands), FR)


def reference_sine(f0_frames: np.ndarray, amp: float) -> np.ndarray:
    """amp * sin(2 pi phi), phi = inclusive cumulative sum of linearly interpolated f0 / SR (float64)."""
    n = len(f0_frames) * HOP
    pos = np.arange(n) / HOP
    f = np.interp(pos, np.arange(len(f0_frames)), f0_frames)
    return amp * np.sin(2 * np.pi * np.cumsum(f / SR))


# ----------------------------------------------------------------------------------- windowed = whole
def test_windowed_synthesis_matches_an_analytic_chirp_across_window_joins(model):
    f0 = np.linspace(200.0, 900.0, 800)  # 3.2 s glide, 0.37 s windows: phase must carry over exactly
    params = tone_params(f0, np.full(800, 0.5))
    old = model.window_s
    try:
        model.window_s = 0.37
        out = model.audio(params, "violin", reverb=False)[0]
    finally:
        model.window_s = old
    ref = reference_sine(f0.astype(np.float32).astype(np.float64), 0.5)
    assert out.shape == ref.shape
    assert np.max(np.abs(out - ref)) < 2e-3
    jumps = np.abs(np.diff(out))  # no clicks: the largest sample step is what a 900 Hz sine allows
    assert jumps.max() <= 0.5 * 2 * np.pi * 900 / SR * 1.05


def test_windowed_render_equals_whole_render_with_noise_and_reverb(model):
    perfs = [perf([(60 + i, 0.3 * i, 0.3 * i + 0.25) for i in range(8)]),
             perf([(48, 0.0, 1.2), (50, 1.2, 2.4)], "cello", name="c")]
    params = model.synth_params(perfs, seed=1)
    f0 = [p.f0_hz[0, :, 0] for p in params]
    old = model.window_s
    try:
        model.window_s = 0.5
        windowed_params = model.synth_params(perfs, seed=1, f0_hz=f0)
        windowed = model.audio(windowed_params, ["violin", "cello"], seed=2)
    finally:
        model.window_s = old
    whole_params = model.synth_params(perfs, seed=1, f0_hz=f0)
    for a, b in zip(windowed_params, whole_params):
        for k, t in a.tensors().items():
            torch.testing.assert_close(t, b.tensors()[k], atol=1e-5, rtol=1e-5)
    whole = model.audio(whole_params, ["violin", "cello"], seed=2)
    assert np.max(np.abs(windowed - whole)) < 1e-4 * max(1.0, np.abs(whole).max())


def test_dry_audio_is_harmonic_plus_noise_of_the_synthesizer(model):
    p = model.synth_params([perf([(64, 0.1, 0.8)])], seed=0)[0]
    dry = model.audio(p, "violin", reverb=False, seed=5)[0]
    n = p.n_frames * HOP
    with torch.no_grad():
        ref = model.synth.harmonic(p.amplitude, p.harmonic_distribution, p.f0_hz, n, SR) \
            + model.synth.noise(p.noise_magnitudes, n, noise=noise_excitation(5, 0, 0, n)[None])
    assert np.max(np.abs(dry - ref[0].numpy())) < 1e-4


# ------------------------------------------------------------------------------------------- reverb
def test_dry_has_no_reverb_tail_and_wet_has_one(model):
    amp = np.r_[np.full(125, 0.3), np.zeros(500)]  # 0.5 s tone, then 2 s of silence
    params = tone_params(np.full(625, 330.0), amp)
    dry = model.audio(params, "violin", reverb=False)[0]
    wet = model.audio(params, "violin", reverb=True)[0]
    after = slice(126 * HOP, None)
    assert np.max(np.abs(dry[after])) == 0.0
    assert np.sqrt(np.mean(wet[after] ** 2)) > 1e-7
    np.testing.assert_allclose(wet[:100 * HOP], dry[:100 * HOP], atol=0.05)  # the direct sound is the dry one


def test_user_impulse_response_is_a_delayed_copy(model):
    params = tone_params(np.full(300, 440.0), np.r_[np.full(100, 0.4), np.zeros(200)])
    ir = np.zeros(1000, np.float32)
    ir[800] = 0.5  # tap 0 is the dry path
    dry = model.audio(params, "violin", reverb=False)[0]
    wet = model.audio(params, "violin", impulse_response=ir)[0]
    ref = dry.copy()
    ref[800:] += 0.5 * dry[:-800]
    assert np.max(np.abs(wet - ref)) < 1e-4


@pytest.mark.parametrize("ir_s", [0.05, None])
def test_render_ends_where_the_tail_falls_below_60_db(model, ir_s):
    """The render is generated for the release plus the reverb's decay (``tail_s``) after the last note, then
    trimmed where the audio falls 60 dB below its peak: what is cut is below that, what is kept is as
    generated (but for a 20 ms fade), in whole frames."""
    p = perf([(60, 0.0, 0.5), (62, 0.5, 1.25)])
    ir = None if ir_s is None else np.exp(-np.arange(int(ir_s * SR)) / (0.01 * SR)).astype(np.float32) * 0.1
    r = model.render([p], seed=0, impulse_response=ir)
    full = model.audio(model.synth_params([p], seed=0, n_frames=model.n_frames_for([p], ir)), "violin",
                       impulse_response=ir, seed=0)[0]
    n, fade = r.mix.shape[0], int(0.02 * SR)
    assert n % HOP == 0 and 1.25 * SR <= n <= full.shape[0] and r.stems.shape == (1, n)
    peak = np.abs(full).max()
    assert np.abs(full[n:]).max(initial=0.0) <= peak * 1e-3
    np.testing.assert_allclose(r.mix[:n - fade] / r.gain, full[:n - fade], atol=1e-5)
    if n < full.shape[0]:  # trimmed: the level crosses -60 dB just before the fade
        assert np.abs(full[n - fade - HOP - 1:n]).max() > peak * 1e-3


def test_shipped_model_renders_end_with_their_audible_tail(trained_model):
    """Not a fixed 4 s after the last note: where each instrument's release and room fall below -60 dB."""
    tails = {}
    for inst in ("violin", "trumpet"):
        r = trained_model.render([perf([(60, 0.0, 0.5), (62, 0.5, 1.25)], inst)], seed=0)
        tails[inst] = r.duration_s - 1.25
        assert 0.05 < tails[inst] < trained_model.tail_s([inst]) - 0.5  # a release, not the IR's length
    assert tails["violin"] != tails["trumpet"]


# -------------------------------------------------------------------------------------- mixing, seeds
def test_mix_stems_scales_mix_and_stems_by_one_gain():
    stems = np.stack([np.full(100, 0.8, np.float32), np.full(100, 0.7, np.float32)])
    mix, scaled, gain = mix_stems(stems.copy())
    assert np.max(np.abs(mix)) == pytest.approx(MIX_PEAK, rel=1e-6)
    assert gain == pytest.approx(MIX_PEAK / 1.5)
    np.testing.assert_allclose(scaled.sum(0), mix, rtol=1e-6)
    quiet = np.full((1, 10), 0.1, np.float32)
    assert mix_stems(quiet.copy())[2] == 1.0


def test_pipelined_render_equals_sequential_render(model):
    # Synthesis on a second thread, one window behind the generator: same audio, bit for bit, including a
    # voice that falls silent for several windows (its phase advances from a copy of the f0).
    perfs = [perf([(64, 0.0, 0.6), (66, 2.5, 3.0)]), perf([(48, 0.0, 3.2)], "cello", name="c")]
    old = model.window_s
    try:
        model.window_s = 0.4
        sequential = model.render(perfs, seed=5, parallel=False)
        torch.set_num_threads(2)
        pipelined = model.render(perfs, seed=5)             # parallel by default with >= 2 threads
        assert torch.get_num_threads() == 2                 # the one-thread limit is lifted afterwards
    finally:
        model.window_s = old
        torch.set_num_threads(1)
    assert np.array_equal(sequential.stems, pipelined.stems)


def test_multi_voice_render_mix_never_clips_and_stems_sum_to_mix(model, tmp_path):
    r = model.render(two_track_midi(tmp_path / "t.mid"), seed=0)
    assert isinstance(r, RenderResult)
    assert len(r.performances) == 2 and [p.instrument for p in r.performances] == ["violin", "cello"]
    assert np.max(np.abs(r.mix)) <= MIX_PEAK + 1e-6
    np.testing.assert_allclose(r.stems.sum(0), r.mix, atol=1e-5)
    assert len(r.params) == 2 and r.params[0].n_frames * HOP == r.mix.shape[0]


def test_same_seed_same_audio_other_seed_other_audio(model, tmp_path):
    mid = two_track_midi(tmp_path / "t.mid")
    a = model.render(mid, seed=3).mix
    b = model.render(mid, seed=3).mix
    c = model.render(mid, seed=4).mix
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_exported_performance_renders_the_same_audio(model, tmp_path):
    first = model.render(two_track_midi(tmp_path / "t.mid"), seed=7, temperature=0.8)
    again = model.render(from_csv(to_csv(first.performances)), seed=7, temperature=0.8)
    assert np.array_equal(first.mix, again.mix)


def test_the_expression_prior_samples_at_the_expression_temperature(model, tmp_path):
    """A render performs its notes at ``expression_temperature`` (default half of ``temperature``), and the
    f0 sampler stays at ``temperature``: the render equals perform-at-that-temperature then render."""
    read = model.read(two_track_midi(tmp_path / "t.mid"))
    for given, prior_t in ((None, 0.4), (0.9, 0.9), (0.0, 0.0)):
        r = model.render(read.voices, seed=2, temperature=0.8, expression_temperature=given)
        perfs = model.perform(read.voices, temperature=prior_t, seed=2)
        assert r.performances == perfs
        assert np.array_equal(r.mix, model.render(perfs, seed=2, temperature=0.8).mix)
    takes = [model.render(read.voices, seed=2, expression_temperature=t).performances[0].controls for t in (0.5, 1)]
    assert not np.array_equal(*takes)
    with pytest.raises(MidiDDSPError, match="expression temperature"):
        model.render(read.voices, expression_temperature=-1.0)


def test_each_level_takes_the_level_above(model, tmp_path):
    read = model.read(two_track_midi(tmp_path / "t.mid"))
    assert len(read.voices) == 2
    perfs = model.perform(read.voices, temperature=0.0)
    assert [p.controls.shape for p in perfs] == [(4, 6), (2, 6)]
    params = model.synth_params(perfs, seed=0)
    audio = model.audio(params, [p.instrument for p in perfs], seed=0)
    assert audio.shape == (2, params[0].n_frames * HOP)
    r = model.render(perfs, seed=0)  # the same chain in one call (its tail trimmed, with a 20 ms fade)
    n = r.stems.shape[1] - int(0.02 * SR)
    np.testing.assert_allclose(r.stems[:, :n] / r.gain, audio[:, :n], atol=1e-5)


def test_user_f0_curve_is_used(model):
    p = perf([(60, 0.0, 1.0)])
    n = model.n_frames_for([p])
    f0 = np.linspace(200.0, 300.0, n).astype(np.float32)
    params = model.synth_params([p], f0_hz=[f0])[0]
    np.testing.assert_allclose(params.f0_hz[0, :, 0].numpy(), f0, rtol=1e-6)


def test_silent_stretches_are_skipped_and_exactly_silent(model):
    p = perf([(60, 0.0, 0.5), (64, 20.0, 20.5)])
    old = model.window_s
    try:
        model.window_s = 2.0
        r = model.render([p], seed=0)
    finally:
        model.window_s = old
    x = r.stems[0]
    assert np.all(x[int(5 * SR):int(17 * SR)] == 0.0)  # after the active window and its reverb tail
    assert np.abs(x[:int(0.5 * SR)]).max() > 0 and np.abs(x[int(20 * SR):int(20.5 * SR)]).max() > 0


def test_extreme_notes_render_with_a_range_warning(model):
    p = perf([(30, 0.0, 0.02), (108, 0.1, 12.1)], "flute")  # a 20 ms and a 12 s note, both out of range
    with pytest.warns(MidiDDSPWarning, match=r"outside the usual range.*C8 \(108\)"):
        r = model.render([p], seed=0)
    assert np.all(np.isfinite(r.mix)) and r.duration_s > 12.1


# ------------------------------------------------------------------------------------------ transfer
def _sine(freq=220.0, seconds=2.0, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    x = amp * np.sin(2 * np.pi * freq * t)
    x[: SR // 4] = 0.0
    return x.astype(np.float32)


def test_transfer_octave_and_loudness_shifts(model):
    x = _sine()
    base = model.transfer(x, SR, "flute")
    assert base.audio.shape == x.shape and np.all(np.isfinite(base.audio))
    up = model.transfer(x, SR, "flute", octave_shift=1)
    on = base.note_on
    assert on[200:400].all() and not on[:40].any()  # the 0.25 s of silence is not a note
    np.testing.assert_allclose(up.f0_hz[on], 2 * base.f0_hz[on], rtol=1e-5)
    louder = model.transfer(x, SR, "flute", loudness_shift_db=6.0)
    above = base.loudness_db > -74
    np.testing.assert_allclose(louder.loudness_db[above] - base.loudness_db[above], 6.0, atol=1e-3)
    auto = model.transfer(x, SR, "flute", auto_octave=True)  # A3 (57) towards the flute's range centre (78)
    assert auto.octave_shift == 2
    resampled = model.transfer(_sine(seconds=1.0)[::2].copy(), 8000, "violin", dry=True)
    assert resampled.audio.shape == (SR,)  # 1 s at 8 kHz comes back as 1 s at 16 kHz


def test_analysis_reextracts_a_performance(model):
    p = perf([(64, 0.1, 0.9), (67, 1.0, 1.8)])
    audio = model.audio(model.synth_params([p], seed=0), "violin", seed=0)[0]
    back = model.extract_performance(audio, SR, p.sequence)
    assert back.controls.shape == (2, 6) and np.all(np.isfinite(back.controls))


def test_measured_reextraction_reads_brightness_and_attack_from_the_audio(model):
    """``measured=True`` reads the harmonic distribution and noise from the audio's spectrum: a tone with eight
    equal harmonics reads brighter than a pure sine, and noise added in the first 40 ms reads as more attack
    (the analysis model here is untrained, so only the measured route can tell)."""
    p = perf([(64, 0.2, 1.0)])
    n = int(1.4 * FR)
    f0 = np.full(n, 329.63)
    amp = np.where((np.arange(n) >= 0.2 * FR) & (np.arange(n) < FR), 0.3, 0.0)
    dark = tone_params(f0, amp)
    bright = tone_params(f0, amp)
    bright.harmonic_distribution[..., :8] = 1 / 8
    bright.harmonic_distribution[..., 8:] = 0
    noisy = tone_params(f0, amp)
    noisy.noise_magnitudes[:, 50:60] = 10 ** (-50 / 20)
    bright_c, attack_c = 4, 5
    read = {}
    for name, params in (("dark", dark), ("bright", bright), ("noisy", noisy)):
        audio = model.audio(params, "violin", reverb=False, seed=0)[0]
        read[name] = model.extract_performance(audio, SR, p.sequence, f0_hz=f0, measured=True).controls[0]
    assert np.all(np.isfinite(np.stack(list(read.values()))))
    assert read["bright"][bright_c] > read["dark"][bright_c] + 0.3
    assert read["noisy"][attack_c] > read["dark"][attack_c] + 0.3


def test_measured_parameters_are_the_training_targets_measurement_in_windows(model):
    """``measure`` (the route of ``measured=True``) runs the training targets' model-free measurement on 8 s
    windows with margins: on a 21 s tone with a vibrato, a swell and noise bursts it equals
    ``measure_controls`` run on the whole signal with the instrument's windows."""
    from midi_ddsp.extraction import measure
    from midi_ddsp.instruments import by_name
    from midi_ddsp.synthesis.ddsp.inversion import measure_controls

    n = int(21 * FR)
    t = np.arange(n) / FR
    f0 = 300 * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t) / 12)
    params = tone_params(f0, 0.2 + 0.1 * np.sin(2 * np.pi * 0.3 * t))
    params.noise_magnitudes[::97] = 10 ** (-40 / 20)
    audio = model.audio(params, "violin", reverb=False, seed=0)[0]
    got = measure(model, audio, SR, "violin", f0_hz=f0, window_s=8.0)
    # (f0 as the parameters hold it, float32)
    whole = measure_controls(audio, f0.astype(np.float32), SR, FR, 60, 65, lowest_hz=by_name("violin").lowest_hz)
    for a, b in ((got.amplitude[0, :, 0], whole.amplitude), (got.harmonic_distribution[0], whole.harmonic_distribution),
                 (got.noise_magnitudes[0], whole.noise_magnitudes)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-8)


def test_measured_brightness_survives_a_trackers_octave_errors(model):
    """Harmonics are read at the note's pitch where the tracked f0 strays more than a semitone from it: a
    tone whose f0 curve is an octave off in the middle of every note gives the brightness of the true f0
    (read at the wrong f0, the partials fall between the bins and the centroid is far off)."""
    from midi_ddsp.extraction import measure, note_anchored_f0
    from midi_ddsp.note_level.expression import extract_controls
    from midi_ddsp.note_level.frames import notes_to_frames

    seq = NoteSequence(tuple(Note(p, 0.2 + i, 1.0 + i) for i, p in enumerate([60, 64, 67, 72])), "violin")
    n = int(4.6 * FR)
    frames = notes_to_frames(seq, n, FR)
    pitch = np.where(frames.pitch > 0, frames.pitch, 60).astype(np.float64)
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    params = tone_params(f0, np.where(frames.note_index >= 0, 0.2, 0.0))
    params.harmonic_distribution[0] = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05] + [0.0] * 55)
    audio = model.audio(params, "violin", reverb=False, seed=0)[0]
    wrong = f0.copy()
    for note in range(4):  # the middle 40 % of every note an octave up
        idx = np.flatnonzero(frames.note_index == note)
        wrong[idx[int(0.3 * idx.size):int(0.7 * idx.size)]] *= 2.0
    fixed = note_anchored_f0(wrong, frames)
    assert np.allclose(fixed, f0.astype(np.float32))  # only the strayed frames moved, to the note's pitch

    def brightness(f0_measured):
        m = measure(model, audio, SR, "violin", f0_hz=f0_measured)
        return extract_controls(params.f0_hz[0], params.amplitude[0], m.harmonic_distribution[0],
                                m.noise_magnitudes[0], frames)[:, 4]

    true_b = brightness(f0)
    np.testing.assert_allclose(true_b, 2.05, atol=0.1)  # sum k H_k of the tone's distribution
    assert np.abs(brightness(wrong) - true_b).max() > 0.3  # the trap the anchoring avoids
    got = model.extract_performance(audio, SR, seq, f0_hz=wrong, measured=True)
    want = model.extract_performance(audio, SR, seq, f0_hz=f0, measured=True)
    np.testing.assert_allclose(got.controls[:, 4], want.controls[:, 4], atol=0.01)


# --------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_errors_are_one_line(tmp_path, checkpoint_dir):
    with pytest.raises(CheckpointError, match="model folder not found"):
        MidiDDSP.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no generator.safetensors"):
        MidiDDSP.from_pretrained(tmp_path / "empty")
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / GENERATOR_FILE).write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        MidiDDSP.from_pretrained(bad)
    mismatched = tmp_path / "mismatched"
    write_random_checkpoints(mismatched, width=16, f0_hidden=16, reverb_length=8000, performance=False,
                             transfer=False, analysis=False)
    tensors, config, extra = load_weights(mismatched / GENERATOR_FILE, "generator")
    save_weights(mismatched / GENERATOR_FILE, tensors, "generator", dict(config, width=24), extra)
    with pytest.raises(CheckpointError, match="do not match") as e:
        MidiDDSP.from_pretrained(mismatched)
    assert "\n" not in str(e.value)


def test_missing_optional_models_fail_when_needed(tmp_path):
    folder = write_random_checkpoints(tmp_path / "gen_only", width=16, f0_hidden=16, reverb_length=8000,
                                      performance=False, transfer=False, analysis=False)
    m = MidiDDSP.from_pretrained(folder)
    assert m.load_time_s > 0
    with pytest.raises(CheckpointError, match="performance.safetensors"):
        m.perform([perf([(60, 0, 1)]).sequence])
    with pytest.raises(CheckpointError, match="transfer.safetensors"):
        m.transfer(_sine(), SR, "violin")
    m.render([perf([(60, 0, 0.5)])])  # a given performance needs no expression model


# ------------------------------------------------------------------ controls (need trained weights)
def _note_f0_modulation_cents(audio, notes, sr=SR):
    """Per note: std (cents) of f0 around a straight-line fit over the note's central 60% (independent of
    the package's control extractor); ``audio`` at ``sr`` Hz."""
    f0, conf = estimate_f0(audio, sr, fmin=100.0)
    out = []
    for p, s, e in notes:
        a, b = int((s + 0.2 * (e - s)) * FR), int((e - 0.2 * (e - s)) * FR)
        cents = 1200 * np.log2(np.maximum(f0[a:b], 1.0) / (440 * 2 ** ((p - 69) / 12)))
        t = np.arange(len(cents))
        resid = cents - np.polyval(np.polyfit(t, cents, 1), t)
        out.append(float(np.std(resid)))
    return np.array(out)


SWEEP_NOTES = [(67, 0.2, 1.7), (69, 2.4, 3.9), (71, 4.6, 6.1)]  # 0.7 s rests: beyond the networks' context


def _render_with(m, control, value_middle):
    p = perf(SWEEP_NOTES, "violin", value=0.5)
    p = p.set_control("vibrato", 0.1).set_control(control, value_middle, notes=1)
    # sampled f0 (temperature 1, fixed seed): greedy decoding of an autoregressive pitch model is flat
    return m.audio(m.synth_params([p], temperature=1.0, seed=0), "violin", reverb=False, seed=0)[0]


@pytest.mark.slow
def test_raising_one_notes_vibrato_raises_its_f0_modulation_only(trained_model):
    sr = trained_model.sample_rate  # the shipped model's rate (48 kHz)
    low = _note_f0_modulation_cents(_render_with(trained_model, "vibrato", 0.1), SWEEP_NOTES, sr)
    high = _note_f0_modulation_cents(_render_with(trained_model, "vibrato", 0.9), SWEEP_NOTES, sr)
    assert high[1] > 2 * low[1] and high[1] - low[1] > 5.0  # cents
    others = np.abs(high[[0, 2]] - low[[0, 2]])
    assert np.all(others < 0.3 * (high[1] - low[1]))


@pytest.mark.slow
def test_raising_one_notes_volume_raises_its_loudness_only(trained_model):
    def loudness(audio):
        ld = a_weighted_loudness(torch.from_numpy(audio)[None], trained_model.sample_rate)[0, :, 0].numpy()
        return np.array([ld[int((s + 0.2) * FR):int((e - 0.2) * FR)].mean() for _, s, e in SWEEP_NOTES])

    low = loudness(_render_with(trained_model, "volume", 0.1))
    high = loudness(_render_with(trained_model, "volume", 0.9))
    assert high[1] - low[1] > 3.0  # dB
    assert np.all(np.abs(high[[0, 2]] - low[[0, 2]]) < 1.0)


def test_edge_inputs_voice_without_notes_tiny_recording(model):
    empty = Performance(NoteSequence((), "violin", "empty"), np.zeros((0, 6)))
    r = model.render([empty, perf([(48, 0.0, 0.02)], "cello")], seed=0)
    assert r.stems.shape[0] == 2 and np.all(r.stems[0] == 0) and np.abs(r.stems[1]).max() > 0
    with pytest.raises(MidiDDSPError, match="lasts 6.2 ms; timbre transfer needs at least 100 ms"):
        model.transfer(np.zeros(100, np.float32), SR, "violin")
    with pytest.warns(MidiDDSPWarning, match="the recording is silent"):
        assert model.transfer(np.zeros(2000, np.float32), SR, "violin").audio.shape == (2000,)


# ------------------------------------------------------------------------------------------- streaming
def test_stream_concatenated_equals_render(model, tmp_path):
    """A short two-voice piece over many windows (0.4 s): the stream's blocks, joined, are the render's mix
    (before its anti-clipping gain) within 1e-6, and its stems likewise; blocks come in the asked size."""
    mid = two_track_midi(tmp_path / "t.mid")
    old = model.window_s
    try:
        model.window_s = 0.4
        rendered = model.render(mid, seed=3)
        blocks = list(model.stream(mid, block_size=1000, seed=3))
        stem_blocks = list(model.stream(mid, block_size=4096, seed=3, stems=True))
    finally:
        model.window_s = old
    assert all(b.shape == (1000,) for b in blocks[:-1]) and 0 < blocks[-1].shape[0] <= 1000
    streamed = np.concatenate(blocks)
    assert streamed.shape == rendered.mix.shape
    assert np.max(np.abs(streamed - rendered.mix / rendered.gain)) < 1e-6
    stems = np.concatenate(stem_blocks, axis=1)
    assert stems.shape == rendered.stems.shape
    assert np.max(np.abs(stems - rendered.stems / rendered.gain)) < 1e-6
    # the same options as render: another expression temperature, an earlier performance kept
    other = model.render(mid, seed=3, expression_temperature=1.0, keep=rendered.performances[:1])
    joined = np.concatenate(list(model.stream(mid, seed=3, expression_temperature=1.0, keep=rendered.performances[:1])))
    assert np.max(np.abs(joined - other.mix / other.gain)) < 1e-6
    assert other.performances[0] == rendered.performances[0] and other.performances[1] != rendered.performances[1]


def test_render_without_stems_sums_the_voices_as_they_come(model, tmp_path):
    """stems=False (the CLI without --stems): the same mix, the same gain, no per-voice rows kept."""
    mid = two_track_midi(tmp_path / "two.mid")
    full = model.render(mid, seed=5)
    lean = model.render(mid, seed=5, stems=False)
    assert full.stems.shape[0] == 2 and lean.stems.shape == (0, lean.mix.shape[0])
    assert lean.gain == pytest.approx(full.gain, rel=1e-6)
    np.testing.assert_allclose(lean.mix, full.mix, atol=1e-6)


def test_stream_bad_block_size_is_one_line(model):
    with pytest.raises(MidiDDSPError, match="block_size"):
        next(model.stream([perf([(60, 0.0, 0.5)])], block_size=0))
