"""Datasets for gancli: TFDS builders run offline, read back as numpy. The only user of tensorflow_datasets."""

from gancli.data.api import dataset_argument, describe, is_folder_argument, load, prepared_bytes, provenance, resolve_data_dir, source, use_file, use_folder
from gancli.data.prepared import reporting_builds
from gancli.data.registry import DATASETS, ArrayDataset, Dataset

__all__ = ["DATASETS", "dataset_argument", "ArrayDataset", "Dataset", "describe", "load", "provenance", "reporting_builds",
           "prepared_bytes", "resolve_data_dir", "source", "use_file", "use_folder", "is_folder_argument"]
