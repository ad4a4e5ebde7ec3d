"""Data loading: image sources decoded once into cached uint8 splits, and a Keras batch stream over them."""

from xsearch.data.dataset import Dataset
from xsearch.data.loader import SOURCES, load_dataset
from xsearch.data.stream import BatchStream

__all__ = ["SOURCES", "BatchStream", "Dataset", "load_dataset"]
