"""specclip-phot: broad-band photometry (Gaia G, BP, RP; 2MASS J, H, Ks) as a specclip modality."""
