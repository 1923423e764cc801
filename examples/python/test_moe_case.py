"""test_moe_case.py: the pytest plugin's `moe_case` fixture on the example reference.

    python3 -m pytest examples/python/test_moe_case.py --moefuzz-corpus corpus/seeds/mixtral-tiny.txt \
        --moefuzz-models mixtral-8x7b,qwen3-30b-a3b --moefuzz-random 3

runs the test once per case: the corpus file and 3 random cases of each model. A failure prints
moefuzz's report, saves the case under moefuzz-failures/ and prints the command that replays it.
moe_reference expresses softmax routing without bias or groups: choose such cases.
"""
import moefuzz
from test_moe_reference import as_kernel, unsupported_reason


def test_reference_on_moe_cases(moe_case):
    assert unsupported_reason(moe_case.params) is None, "moe_reference cannot compute it"
    v = moefuzz.check(as_kernel(), moe_case, contract="any-order", metamorphic=True,
                      supports=unsupported_reason)
    assert v, v.explain()
