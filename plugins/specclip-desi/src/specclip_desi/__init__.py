"""DESI spectra for specclip: the ``desi`` modality, readers of ``coadd-*.fits`` and ``spectra-*.fits``
files (arms B, R, Z merged on one 0.8 A grid), a writer of coadd-style files and DESI's instrument."""
