"""`tcplab lab timewait --watch`: the Ctrl+C'd server's connection entering TIME-WAIT, live.

Root and tracefs are needed (skipped otherwise, a failure with TCPLAB_REQUIRE_TUN=1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tcplab.lab.timewait import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("TCPLAB_REQUIRE_TUN") == "1":
        pytest.fail("TCPLAB_REQUIRE_TUN=1 but not root: lab timewait --watch cannot run")
    pytest.skip("lab timewait --watch needs root")


def test_watch_shows_the_server_side_entering_time_wait() -> None:
    port, second = free_port(), free_port()
    res = subprocess.run([sys.executable, "-m", "tcplab", "lab", "timewait", "--watch",
                          "--json", "--port", str(port), "--second-port", str(second)],
                         capture_output=True, text=True, timeout=100, check=False)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    trace = doc["kernel_trace"]
    for rnd in doc["rounds"]:
        server = f"127.0.0.1:{rnd['port']}-127.0.0.1:{rnd['client_port']}"
        client = f"127.0.0.1:{rnd['client_port']}-127.0.0.1:{rnd['port']}"
        server_states = [e["to"] for e in trace if e["kind"] == "state"
                         and e["conn"] == server]
        # The server (Ctrl+C'd) closes first: it is the one that ends in TIME-WAIT ...
        assert server_states[:3] == ["SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1"]
        assert server_states[-1] == "TIME-WAIT"
        assert all(e["host"] == "server" for e in trace if e.get("conn") == server
                   and e["kind"] == "state")
        # ... and the client, the passive closer, never does.
        assert [e["to"] for e in trace if e["kind"] == "state" and e["conn"] == client] == [
            "SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
        # The tracepoint's CLOSE of the full socket is explained where it happens.
        assert any(e["kind"] == "note" and e.get("conn") == server
                   and "timewait mini-socket" in e["text"] for e in trace)
