"""Contracts between the stages: records, Arrow schemas, HDF5 layouts, manifests, suites."""
