"""Differentiable DSP in PyTorch: stateless ops, synths, effects, features and losses.

Knows nothing of MIDI, notes or training; usable on its own."""
