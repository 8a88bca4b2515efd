"""Every layer class in layer_cases.py meets the layer contract (tests/contract.py)."""

import pytest

from contract import run_layer_contract
from layer_cases import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_layer_contract(case, tmp_path):
    run_layer_contract(case, tmp_path)
