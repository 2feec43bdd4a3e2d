"""Datasets for gancli: TFDS builders run offline, read back as numpy. The only user of tensorflow_datasets."""

from gancli.data.api import describe, load, provenance, resolve_data_dir, use_file
from gancli.data.prepared import reporting_builds
from gancli.data.registry import DATASETS, ArrayDataset, Dataset

__all__ = ["DATASETS", "ArrayDataset", "Dataset", "describe", "load", "provenance", "reporting_builds", "resolve_data_dir",
           "use_file"]
