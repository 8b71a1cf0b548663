"""Control consistency: the generator's synthesis parameters should carry the expression controls it was given.

Trained only to reconstruct real performances, the generator learns how controls co-vary in the corpus and
answers a single swept control weakly (a regression to the instrument's mean). The remedy here is
counterfactual: give each note new, random values for some controls, generate parameters (f0 teacher-forced),
measure those controls back from the parameters with the same definitions as
:func:`midi_ddsp.note_level.expression.extract_controls`, written in torch so gradients flow, and penalise the
difference in normalised units.

Measured differentiably: ``volume``, ``vol_fluc``, ``vol_peak_pos`` (the argmax relaxed to a softmax over the
note's frames at ``peak_temperature_db``), ``brightness`` and ``attack``. ``vibrato`` (a spectral peak of the
sampled f0) is left to the f0 model's cross-entropy.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..note_level.expression import ATTACK_S
from ..note_level.notes import CONTROL_NAMES
from ..synthesis.ddsp.functional import amplitude_to_db
from ..synthesis.params import SynthParams

DIFFERENTIABLE_CONTROLS = ("volume", "vol_fluc", "vol_peak_pos", "brightness", "attack")


def segment_mean(x: Tensor, note_id: Tensor, n_notes: int) -> Tensor:
    """Mean of ``x`` [B, F, C] over each note's frames -> [B, n_notes, C] (0 for notes with no frame).

    ``note_id``: [B, F] int, each frame's note number ``0 .. n_notes - 1`` within its example, -1 on rests.
    """
    b, f, c = x.shape
    on = note_id >= 0
    seg = torch.where(on, note_id + n_notes * torch.arange(b, device=x.device)[:, None], b * n_notes).reshape(-1)
    w = on.to(x.dtype).reshape(-1, 1)
    total = x.new_zeros(b * n_notes + 1, c + 1).index_add(0, seg, torch.cat([x.reshape(-1, c) * w, w], -1))
    total = total[:-1].reshape(b, n_notes, c + 1)
    return total[..., :c] / total[..., c:].clamp_min(1.0)


def note_lengths(note_id: Tensor, n_notes: int) -> Tensor:
    """Frames per note, [B, n_notes] (0 for notes absent from an example)."""
    return (note_id[..., None] == torch.arange(n_notes, device=note_id.device)).sum(1)


def note_controls(params: SynthParams, note_id: Tensor, n_notes: int, peak_temperature_db: float = 1.0) -> Tensor:
    """Raw controls of every note, differentiable in ``params``.

    Args:
        params: [B, F, .] synthesis parameters.
        note_id: [B, F] int, each frame's note number ``0 .. n_notes - 1`` within its example, -1 on rests
            (and on notes that should not be measured).
        n_notes: notes per example (upper bound of ``note_id`` + 1).
        peak_temperature_db: softness of the peak position: frames are weighted by
            ``exp((A_t - max A) / peak_temperature_db)`` (-> the argmax as it -> 0).
    Returns:
        [B, n_notes, 5] raw ``volume`` (dB), ``vol_fluc`` (dB), ``vol_peak_pos`` (fraction of the note),
        ``brightness`` (harmonic number), ``attack`` (dB), in :data:`DIFFERENTIABLE_CONTROLS` order; rows of
        absent notes are meaningless (mask them with :func:`note_lengths`).
    """
    a_db = amplitude_to_db(params.amplitude)
    volume = segment_mean(a_db, note_id, n_notes)
    centred = a_db - to_frames(volume, note_id)
    vol_fluc = (segment_mean(centred ** 2, note_id, n_notes) + 1e-8).sqrt()

    position = _position_in_note(note_id).to(a_db.dtype)[..., None]
    length = note_lengths(note_id, n_notes).to(a_db.dtype)[..., None].clamp_min(1.0)
    peak = to_frames(_segment_max(a_db.detach(), note_id, n_notes), note_id)
    weight = torch.exp((a_db - peak).clamp_max(0.0) / peak_temperature_db)
    peak_pos = segment_mean(weight * position, note_id, n_notes) / segment_mean(weight, note_id, n_notes).clamp_min(
        1e-12) / length

    harm = params.harmonic_distribution
    k = torch.arange(1, harm.shape[-1] + 1, dtype=harm.dtype, device=harm.device)
    centroid = (harm * k).sum(-1, keepdim=True) / harm.sum(-1, keepdim=True).clamp_min(1e-8)
    brightness = segment_mean(centroid, note_id, n_notes)

    # Attack: mean noise level over each note's first round(ATTACK_S * frame_rate) frames.
    n_attack = max(1, int(round(ATTACK_S * params.frame_rate)))
    early = torch.where(_position_in_note(note_id) < n_attack, note_id, -1)
    noise_db = amplitude_to_db(params.noise_magnitudes).mean(-1, keepdim=True)
    attack = segment_mean(noise_db, early, n_notes)
    return torch.cat([volume, vol_fluc, peak_pos, brightness, attack], -1)


def counterfactual_controls(controls: Tensor, present: Tensor, p: float, generator: torch.Generator | None = None,
                            names: tuple[str, ...] = DIFFERENTIABLE_CONTROLS) -> Tensor:
    """Replace each of the ``names`` controls of each present note by a uniform [0, 1] draw with probability ``p``.

    Args:
        controls: [B, n_notes, 6] normalised controls (:data:`CONTROL_NAMES` order). present: [B, n_notes] bool.
    """
    cols = torch.tensor([CONTROL_NAMES.index(n) for n in names], device=controls.device)
    draw = torch.rand(controls.shape[:2] + (len(names),), generator=generator, device=controls.device)
    swap = torch.rand(draw.shape, generator=generator, device=controls.device) < p
    swap &= present[..., None]
    out = controls.clone()
    out[..., cols] = torch.where(swap, draw.to(controls.dtype), controls[..., cols])
    return out


def to_frames(per_note: Tensor, note_id: Tensor) -> Tensor:
    """[B, n_notes, C] -> [B, F, C]: each frame's note value (0 on rests)."""
    idx = note_id.clamp_min(0)[..., None].expand(-1, -1, per_note.shape[-1])
    return torch.where(note_id[..., None] >= 0, per_note.gather(1, idx), per_note.new_zeros(()))


def _segment_max(x: Tensor, note_id: Tensor, n_notes: int) -> Tensor:
    """Max of ``x`` [B, F, 1] over each note's frames -> [B, n_notes, 1]."""
    b = x.shape[0]
    seg = torch.where(note_id >= 0, note_id + n_notes * torch.arange(b, device=x.device)[:, None], b * n_notes)
    out = x.new_full((b * n_notes + 1,), float("-inf")).scatter_reduce(0, seg.reshape(-1), x.reshape(-1), "amax")
    return out[:-1].reshape(b, n_notes, 1)


def _position_in_note(note_id: Tensor) -> Tensor:
    """[B, F] frames since the note's first frame (notes are contiguous runs of one id)."""
    f = note_id.shape[1]
    idx = torch.arange(f, device=note_id.device).expand_as(note_id)
    start = torch.ones_like(note_id, dtype=torch.bool)
    start[:, 1:] = note_id[:, 1:] != note_id[:, :-1]
    first = torch.where(start, idx, torch.zeros_like(idx)).cummax(1).values
    return idx - first


__all__ = ["DIFFERENTIABLE_CONTROLS", "segment_mean", "note_lengths", "note_controls", "counterfactual_controls",
           "to_frames"]
