"""``python -m backpropagate`` is ``backprop``."""

from backpropagate.app import main

main()
