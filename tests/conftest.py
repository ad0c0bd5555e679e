"""Test-wide settings."""

import torch

# Tests run in parallel processes (pytest -n 2) with small tensors: one torch thread per
# process avoids oversubscribing the cores, which slows small kernels several-fold.
torch.set_num_threads(1)
