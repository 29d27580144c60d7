"""Child processes for the crash tests (a plain module, not a fixture file)."""

import os
import signal
import time


def wait_for(pred, proc, timeout=60.0) -> bool:
    """True once pred() holds; False if the child ends first or the time runs out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def kill(proc):
    """SIGKILL the child if it still runs, reap it, and close its pipes."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.communicate()  # the child is gone: read what is left and close the pipes
