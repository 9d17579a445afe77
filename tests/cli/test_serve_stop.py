"""A stop of ``serve`` is bounded as a whole: past its limit the process ends anyway."""

from __future__ import annotations

import subprocess
import sys
import time


def test_a_process_whose_stop_hangs_ends_at_the_limit_with_an_error() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "import time\nfrom router.stopping import exit_after\n"
         "exit_after(0.3)\ntime.sleep(30)  # a clean-up that never ends\n"],
        capture_output=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert time.monotonic() - started < 20  # not the 30 s it would have slept
    assert b"stopping took more than 0.3 s; exiting without finishing it" in proc.stderr
