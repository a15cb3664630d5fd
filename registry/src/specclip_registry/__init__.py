"""The catalogue of named things: dataset cards (``datasets/*.toml``) and run specs (``specs/*.yaml``)
of the surveys whose plugins this distribution depends on, registered through the ``specclip`` hooks."""
