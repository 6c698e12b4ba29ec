import os

import pytest
import torch

# Tests run on a 2-core machine; keep torch from oversubscribing it.
torch.set_num_threads(min(2, os.cpu_count() or 1))

REDUCED = os.environ.get("KINEMA_SLOW_REDUCED") == "1"


@pytest.fixture
def reduced() -> bool:
    """True when CI runs slow tests in their reduced form."""
    return REDUCED
