import os

import pytest
import torch

# Tiny test models run fastest on one thread (and leave the other core to the rest of the machine).
torch.set_num_threads(1)

REDUCED = os.environ.get("KINEMA_SLOW_REDUCED") == "1"


@pytest.fixture
def reduced() -> bool:
    """True when CI runs slow tests in their reduced form."""
    return REDUCED
