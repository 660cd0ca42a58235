"""hitrank.runtime.keep_freed_memory: the large blocks of torch's activations are reused
instead of being mapped afresh (and faulted in by the kernel) on every forward pass;
HITRANK_MALLOC=system opts out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hitrank.runtime import MALLOC_VAR

# five forward passes of musicnn's first timbral convolution over a minute of audio (20
# patches of 187 frames x 96 bands; a 170 MB activation each): the page faults they take
_CHILD = """
import resource
import torch
from hitrank.runtime import keep_freed_memory
torch.set_num_threads(1)
print(keep_freed_memory())
conv = torch.nn.Conv2d(1, 204, (7, 38))
x = torch.randn(20, 1, 187, 96)
with torch.no_grad():
    conv(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.relu(conv(x)).amax(dim=3)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(env_value: str | None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != MALLOC_VAR}
    if env_value is not None:
        env[MALLOC_VAR] = env_value
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's (Linux)")
def test_activations_reuse_freed_blocks_and_the_system_setting_opts_out():
    applied, kept = _run(None)
    if applied != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    opted_out, system = _run("system")
    assert opted_out == "False"
    activation_pages = 20 * 204 * 181 * 59 * 4 // 4096
    assert system > 5 * activation_pages  # glibc's default: every pass maps and faults in its blocks anew
    assert kept * 4 < system
