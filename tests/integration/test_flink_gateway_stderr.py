"""The PyFlink gateway JVM's stderr is drained: an operator that writes a lot there cannot block.

PyFlink starts the JVM with ``stderr=PIPE`` and never reads it. In thread mode our operators run in
that JVM, so 64 KiB of stderr (librdkafka's reconnect lines during a Kafka outage) blocked the next
write for good: the trending job's producer wedged after a Kafka kill (issue 13). The job below
writes 256 KiB to stderr from a map function; without the drain it never finishes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.settings import REPO_ROOT

pytestmark = pytest.mark.integration

JOB = textwrap.dedent("""
    import os
    from pyflink.common import Types
    from core.settings import Settings
    from topologies.flink import stream_table_env

    env, _ = stream_table_env(Settings(), checkpoint_interval_ms=None)

    def noisy(x: int) -> int:
        os.write(2, b"e" * 1023 + b"\\n")  # 1 KiB per record straight to fd 2, as librdkafka logs
        return x

    with env.from_collection(list(range(256)), Types.INT()).map(noisy, Types.INT()).execute_and_collect() as rows:
        print("collected", len(list(rows)), flush=True)
""")


def test_an_operator_writing_256_kib_to_stderr_does_not_block_the_job(tmp_path: Path) -> None:
    env = {**os.environ, "FEEDSTREAM_STATE_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    try:
        done = subprocess.run([sys.executable, "-c", JOB], env=env, cwd=REPO_ROOT, capture_output=True,
                              timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the job did not finish in 240 s: its operator is blocked writing to stderr ({exc})")
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err[-3000:]
    assert "collected 256" in out
    assert err.count("e" * 1023) == 256  # every line reached our stderr, in the job's process
