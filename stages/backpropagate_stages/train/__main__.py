"""Entry point: ``python -m backpropagate_stages.train --spec PATH``; exits with the run's code."""

import sys

from backpropagate_stages.harness import stage_main
from backpropagate_stages.train.run import run

if __name__ == "__main__":
    sys.exit(stage_main("train", run))
