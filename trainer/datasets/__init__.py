"""Seed data sets and users' labelled files (being split into modules)."""

from trainer.datasets.mojibake import (
    DatasetError,
    Example,
    build_datasets,
    load_dataset_csv,
    read_labelled_file,
)

__all__ = [
    "DatasetError",
    "Example",
    "build_datasets",
    "load_dataset_csv",
    "read_labelled_file",
]
