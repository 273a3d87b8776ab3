"""Seed data sets and users' labelled files (being split into modules)."""

from trainer.datasets.examples import DatasetError, Example
from trainer.datasets.mojibake import build_datasets, load_dataset_csv
from trainer.datasets.user_files import read_labelled_file

__all__ = [
    "DatasetError",
    "Example",
    "build_datasets",
    "load_dataset_csv",
    "read_labelled_file",
]
