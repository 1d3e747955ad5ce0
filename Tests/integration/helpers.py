"""What the end-to-end tests share."""
import socket
import time


def wait_until_answers(path, process=None, timeout=20.0):
    """Waits until a daemon accepts connections on `path` (a stale socket file may be there before it binds),
    or until `process` exits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            return
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(path)
                return
        except OSError:
            time.sleep(0.05)
