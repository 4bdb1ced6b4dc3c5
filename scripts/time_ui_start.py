"""Time from `backprop ui` to its first 200: start the real command, poll until the runs page answers.

    python scripts/time_ui_start.py            (3 starts, on a free port, in a scratch UI folder)
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_one_start(folder: str) -> float:
    port = free_port()
    env = {**os.environ, "BACKPROPAGATE_UI__OUTPUT_DIR": folder}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "backpropagate", "ui", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                if process.poll() is not None:
                    sys.exit(f"backprop ui exited with {process.returncode}: {process.stderr.read().decode()}")
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        times = [time_one_start(folder) for _ in range(args.repeat)]
    print(f"backprop ui -> first 200: best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s "
          f"over {len(times)} starts")


if __name__ == "__main__":
    main()
