"""The studio: a browser editor for performances (``midi-ddsp studio [MIDI]``), an optional extra.

Install with ``pip install -e ".[studio]"`` (Starlette + uvicorn). The page and its scripts are plain files in
``midi_ddsp/studio/static/`` served by the package: no CDN, no build step, works offline.

Modules: :mod:`.edits` (validating and applying edits, the undo history; note level only), :mod:`.renderer`
(full and regional renders, splicing, undo patches), :mod:`.session` (the open performance, lock, autosave,
render cache), :mod:`.server` (the HTTP app), :mod:`.command` (the CLI).

HTTP API (JSON unless said otherwise; errors are ``{"error": "one line"}`` with a 4xx status and change nothing).
Requests that change anything need the header ``X-Studio: 1`` (the page sends it; a foreign web page cannot).

======================  =====================================================================================
``GET /``               the page (``/static/*``: its scripts and style)
``GET /api/state``      version numbers, voices, duration, sample rate, undo/redo availability, instruments the
                        model knows, the controls and their accepted range, the last render (kind, seconds,
                        regions ``[voice, start_s, end_s]``), warnings, the upload limit
``GET /api/performance``  the open performance as the JSON ``midi-ddsp render --export-performance x.json`` writes
``PUT /api/performance``  body: that JSON (whole: replaces the performance), or the subset form
                        ``{"edits": [{"voice": V, "note": I, <field>: value, ...}], "instruments": [{"voice": V,
                        "instrument": NAME}]}`` with fields ``pitch`` (0..127), ``onset_s``, ``offset_s`` (seconds,
                        offset after onset, notes of a voice may not overlap), ``velocity`` (1..127) and the six
                        controls (``volume vol_fluc vol_peak_pos vibrato brightness attack``, -1..2). Answers 200
                        with the state plus ``changed`` and ``selected`` (the edited notes' ``[voice, index]``
                        after re-sorting). 400 malformed, 404 no such voice/note, 413 over the limits
                        (20 minutes, 20000 notes, 32 voices, 8 MiB body).
``POST /api/retake``    ``{"notes": [[V, I], ...], "temperature": T, "seed": S}``: new controls for those notes
                        from the expression model (another take); the other notes keep theirs.
``POST /api/undo``, ``POST /api/redo``   one step (409 when there is none); audio restored exactly.
``POST /api/open?name=N``  raw body: a MIDI file (recognised by its header), or a performance JSON / CSV
                        (UTF-8); at most 4 MiB (413), anything else 415, an unusable file 422. ``name`` is a label
                        only. Starts a new history.
``GET /api/audio.wav``  the current mix, 16-bit mono WAV (``?download=1``: as an attachment)
``GET /api/export/json``, ``/api/export/csv``, ``/api/export/mid``   the performance as a download
``GET /api/curves``     every voice's f0 (Hz) and loudness (dB) at 50 frames/s
``GET /api/spectrogram?t0=&t1=&width=&height=``  uint8 ``[height, width]`` log-magnitude image of the mix
                        (log-frequency rows from 8 kHz at the top down to 30 Hz), headers X-Width, X-Height
======================  =====================================================================================

Security: the server listens on 127.0.0.1 unless ``--host`` says otherwise (and then warns); no endpoint takes a
path from the client; uploads are size-limited and parsed as MIDI, JSON or CSV only; the ``Host`` header is
checked; one lock serialises every request on the session.
"""
from __future__ import annotations

__all__ = ["Session", "create_app", "StudioServer"]


def __getattr__(name: str):
    # Lazy: importing midi_ddsp.studio must not need the optional server packages.
    if name == "Session":
        from .session import Session

        return Session
    if name in ("create_app", "StudioServer"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
