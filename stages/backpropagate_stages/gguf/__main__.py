"""Entry point: ``python -m backpropagate_stages.gguf --spec PATH``; exits with the run's code."""

import sys

from backpropagate_stages.harness import stage_main
from backpropagate_stages.host_watch import watch_host

watch_host()  # before the stage's imports (the ML stack takes seconds): a host that dies meanwhile ends it
from backpropagate_stages.gguf.run import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(stage_main("gguf", run))
