"""dtk's ground floor: errors, lazy imports, atomic I/O, frames, conversions, kernels, metrics,
baselines, the frame pipeline, FLOP counting and the model definitions with their checkpoints.

Nothing here imports engines, training, bench or the application (`toolkit.app`).
"""
