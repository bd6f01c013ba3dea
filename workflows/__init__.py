"""Declarative runs chaining the stages, and the ``audiomill`` command line."""
