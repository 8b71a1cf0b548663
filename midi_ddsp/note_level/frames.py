"""Notes <-> frame-level arrays at the model's frame rate (250 Hz by default).

Frame convention (the project's): frame ``i`` is centred on time ``i / frame_rate`` seconds. A note from
``onset_s`` to ``offset_s`` covers the frames ``round(onset_s * frame_rate) <= i < round(offset_s * frame_rate)``
(round half up, as MIDI-DDSP's ``round(time * 250)``), at least one frame. Where rounding makes two notes
meet in the same frame the later note wins; a note shorter than half a frame can thus vanish from the grid.

Per frame (:class:`NoteFrames`): ``pitch`` (0 on rests), ``onset`` / ``offset`` flags on the first / last
frame of a note, ``note_index`` (-1 on rests) and ``position``, the within-note position ``idx / L`` with
``idx`` 1-based (MIDI-DDSP's ``index_length`` code: 1/L on the first frame, 1 on the last, 0 on rests).
No per-frame Python loops: the only loop is over notes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midi_ddsp.note_level.notes import Note, NoteSequence

FRAME_RATE = 250.0


@dataclass(frozen=True, eq=False)
class NoteFrames:
    """A note sequence laid out on frames ``start_frame .. start_frame + n_frames - 1``.

    Frame arrays ``[n_frames]``: ``pitch`` int64 (0 on rests), ``onset`` / ``offset`` bool, ``note_index``
    int64 (-1 on rests), ``position`` float32 in (0, 1] (0 on rests).
    Note arrays ``[n_notes]`` (all notes of the sequence): ``note_pitch`` int64, ``note_start`` /
    ``note_end`` int64 frame indices *within this window*, end exclusive, clipped to ``[0, n_frames]``
    (``note_start == note_end`` for a note outside the window).
    """

    pitch: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    note_index: np.ndarray
    position: np.ndarray
    note_pitch: np.ndarray
    note_start: np.ndarray
    note_end: np.ndarray
    frame_rate: float = FRAME_RATE
    start_frame: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.pitch.shape[0])

    @property
    def n_notes(self) -> int:
        return int(self.note_pitch.shape[0])

    @property
    def note_lengths(self) -> np.ndarray:
        """[n_notes] frames of each note inside the window."""
        return self.note_end - self.note_start

    def features(self) -> np.ndarray:
        """float32 ``[n_frames, 4]``: pitch / 127, onset, offset, position (the synthesis generator's input)."""
        return np.stack(
            [self.pitch / 127.0, self.onset, self.offset, self.position], axis=-1
        ).astype(np.float32)

    @classmethod
    def from_flags(cls, pitch, onsets, frame_rate: float = FRAME_RATE) -> "NoteFrames":
        """Notes from a frame-level pitch track and onset flags (MIDI-DDSP's data format).

        A note starts at every onset flag and wherever the (non-zero) pitch changes; frames with pitch 0 are
        rests. Arguments are ``[n_frames]`` arrays (numpy or torch).
        """
        pitch = np.rint(_np(pitch)).astype(np.int64).reshape(-1)
        onsets = _np(onsets).reshape(-1) > 0.5
        prev = np.concatenate([[0], pitch[:-1]])
        voiced = pitch > 0
        starts_flag = voiced & (onsets | (pitch != prev))
        starts = np.flatnonzero(starts_flag)
        # A note runs until the next start or the next rest, whichever comes first.
        n = pitch.shape[0]
        rest = np.append(np.flatnonzero(~voiced), n)
        ends = np.minimum(np.append(starts[1:], n), rest[np.searchsorted(rest, starts)])
        return _layout(starts, ends, pitch[starts], n, 0, frame_rate)


def note_frame_bounds(sequence: NoteSequence, frame_rate: float = FRAME_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Absolute frame ranges ``[start, end)`` of every note (int64 ``[n_notes]`` each), per the convention above."""
    starts = np.floor(sequence.onsets_s * frame_rate + 0.5).astype(np.int64)
    ends = np.floor(sequence.offsets_s * frame_rate + 0.5).astype(np.int64)
    ends = np.maximum(ends, starts + 1)
    ends = np.minimum(ends, np.append(starts[1:], np.iinfo(np.int64).max))  # the later note wins a shared frame
    return starts, np.maximum(ends, starts)


def notes_to_frames(
    sequence: NoteSequence, n_frames: int, frame_rate: float = FRAME_RATE, start_frame: int = 0
) -> NoteFrames:
    """Lay ``sequence`` out on ``n_frames`` frames starting at absolute frame ``start_frame``.

    ``start_frame`` lets a long piece be processed in windows: a note that began before the window keeps
    its position count and has no onset flag; one that runs past the end has no offset flag.
    """
    starts, ends = note_frame_bounds(sequence, frame_rate)
    return _layout(starts - start_frame, ends - start_frame, sequence.pitches, int(n_frames), int(start_frame),
                   frame_rate)


def _layout(starts, ends, note_pitch, n_frames, start_frame, frame_rate) -> NoteFrames:
    """Frame arrays from note ranges ``[starts, ends)`` given relative to the window (may exceed it)."""
    note_pitch = np.asarray(note_pitch, dtype=np.int64)
    lo = np.clip(starts, 0, n_frames)
    hi = np.clip(ends, 0, n_frames)
    note_index = np.full(n_frames, -1, dtype=np.int64)
    for k in np.flatnonzero(hi > lo):  # loop over notes, not frames
        note_index[lo[k]:hi[k]] = k
    on = note_index >= 0
    k = np.where(on, note_index, 0)
    frame = np.arange(n_frames)
    pitch = np.where(on, note_pitch[k] if note_pitch.size else 0, 0)
    length = np.maximum(ends - starts, 1)
    position = np.where(on, (frame - starts[k] + 1) / length[k] if starts.size else 0.0, 0.0).astype(np.float32)
    onset = on & (frame == (starts[k] if starts.size else -1))
    offset = on & (frame == (ends[k] - 1 if starts.size else -1))
    return NoteFrames(pitch.astype(np.int64), onset, offset, note_index, position, note_pitch,
                      lo.astype(np.int64), hi.astype(np.int64), float(frame_rate), int(start_frame))


def frames_to_notes(frames: NoteFrames, instrument: str | None = "violin", name: str = "",
                    velocity: int = 100) -> NoteSequence:
    """The notes visible in ``frames`` as a :class:`NoteSequence` (times quantised to the frame grid)."""
    fr, s0 = frames.frame_rate, frames.start_frame
    notes = [
        Note(int(p), (s0 + a) / fr, (s0 + b) / fr, velocity, instrument or "violin")
        for p, a, b in zip(frames.note_pitch, frames.note_start, frames.note_end)
        if b > a
    ]
    return NoteSequence(tuple(notes), instrument, name)


def expand_to_frames(values, frames: NoteFrames) -> np.ndarray:
    """Hold per-note values ``[n_notes, C]`` over each note's frames: ``[n_frames, C]``, 0 on rests."""
    values = _np(values)
    values = values.reshape(values.shape[0], -1)
    on = frames.note_index >= 0
    if values.shape[0] == 0:
        return np.zeros((frames.n_frames, values.shape[1]), dtype=values.dtype)
    out = values[np.where(on, frames.note_index, 0)]
    return np.where(on[:, None], out, 0).astype(values.dtype)


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


__all__ = ["FRAME_RATE", "NoteFrames", "note_frame_bounds", "notes_to_frames", "frames_to_notes",
           "expand_to_frames"]
