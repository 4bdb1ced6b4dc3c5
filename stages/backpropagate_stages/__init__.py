"""Stage programs: `python -m backpropagate_stages.<stage> --spec PATH`. They run in images or in-process."""
