"""Training data: the soundfont corpus builder, loaders for real recordings, the feature cache, and the
Datasets/DataModules that feed the models.

Modules (imported on demand; nothing heavy is imported here):

* :mod:`.corpus_sources` - melodies from music21's corpus / MIDI folders; the evaluation blacklist
* :mod:`.performer`      - the humanising performer (notes + expression curves + MIDI events)
* :mod:`.render`         - FluidSynth rendering (dry, 16 kHz mono); :mod:`.calibration` - soundfont tuning
* :mod:`.corpus`         - ``build_corpus(CorpusConfig)``
* :mod:`.loaders`        - corpus / URMP / wav+mid pairs -> ``PieceSource``
* :mod:`.cache`          - ``cache_features(CacheConfig)``
* :mod:`.datasets`, :mod:`.datamodules` - 4 s clips (synthesis) and whole pieces (performance)
* :mod:`.report`         - corpus report (text + PNG); :mod:`.cli` - ``midi-ddsp data ...``
"""
