"""The catalogue of named things: dataset cards (datasets/*.toml) and run specs (specs/*.yaml)."""
