"""xsearch: architecture search over the Xception design space."""

from xsearch.builder import MIN_INPUT_SIZE, build_model
from xsearch.config import XceptionConfig
from xsearch.costs import model_costs
from xsearch.latency import measure_latency
from xsearch.space import SearchSpace

__all__ = ["MIN_INPUT_SIZE", "SearchSpace", "XceptionConfig", "build_model", "measure_latency", "model_costs"]
