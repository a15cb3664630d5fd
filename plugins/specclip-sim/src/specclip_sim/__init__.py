"""specclip-sim: a physics-grounded spectrum emulator and generic instrument simulation.

Everything this package makes is simulated and must be labelled so wherever it is used.
"""
