"""Entry point: ``python -m backpropagate_stages.eval --spec PATH``; exits with the run's code."""

import sys

from backpropagate_stages.eval.run import run
from backpropagate_stages.harness import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("eval", run))
