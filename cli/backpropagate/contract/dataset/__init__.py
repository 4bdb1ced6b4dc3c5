"""Reading and checking training data: JSONL or JSON array files in the ShareGPT, OpenAI, Alpaca or raw text format.

``load_dataset`` returns every valid row as an ``Example`` with its line number,
or raises ``INPUT_DATASET_INVALID`` naming the file, line and reason.
"""

from backpropagate.contract.dataset.formats import FORMATS, Example, Message
from backpropagate.contract.dataset.reader import Dataset, Problem, dataset_file, load_dataset

__all__ = ["FORMATS", "Dataset", "Example", "Message", "Problem", "dataset_file", "load_dataset"]
