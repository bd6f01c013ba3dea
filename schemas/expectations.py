"""Great Expectations suites for the ingest stage, and the code that runs them.

Two suites guard the ingest pipeline (DESIGN.md section 4.2):

- :func:`segment_suite` checks the requested segments before anything is fetched: clip ids that
  are safe file names and unique, ``0 <= start_s < end_s``, a bounded duration, labels that are
  class indices of the class map.
- :func:`clip_suite` checks the metadata of decoded clips: output rate and channels, a plausible
  source rate, delivered/requested coverage, peak, clipping and silence ratios.

:func:`validate_frame` runs a suite with GE's own API on a pandas DataFrame, through one
ephemeral Data Context cached per process (usage statistics off, no network), and maps the
failures back to row positions, so the pipeline can send exactly the failing clips to the ledger
with the expectations they failed. :func:`render_html` turns a result into a Data Docs page
with GE's own renderers (``pipelines.validation_reports`` stores both in the dataset).

Failed expectations are named ``<expectation type>:<column(s)>``, for example
``expect_column_values_to_be_between:start_s``; table-level ones by their type alone.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from schemas.deferred_imports import deferred

with deferred("scipy.stats", "altair"):  # only GE's KL-divergence expectation uses them
    import great_expectations as gx
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        expectationSuiteValidationResultSchema,
    )
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.datasource.fluent import PandasDatasource
    from great_expectations.expectations import Expectation
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

SEGMENT_SUITE_NAME = "audiomill_segments"
CLIP_SUITE_NAME = "audiomill_clips"

CLIP_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,200}$"
"""Characters and length a clip id may have (it becomes part of file names and HDF5 keys)."""

SEGMENT_COLUMNS = (
    "clip_id",
    "source",
    "start_s",
    "end_s",
    "labels",
    "num_unknown_labels",
    "split",
)
CLIP_COLUMNS = (
    "clip_id",
    "sample_rate",
    "channels",
    "source_sample_rate",
    "source_channels",
    "requested_seconds",
    "delivered_seconds",
    "coverage",
    "peak",
    "clipping_ratio",
    "silence_ratio",
)

ROW_COLUMN = "row_position"
"""Helper column holding each row's position; GE reports failing rows by it."""

DEFAULT_MAX_DURATION_S = 60.0
DEFAULT_MIN_COVERAGE = 0.9
DEFAULT_MAX_COVERAGE = 1.5
DEFAULT_MAX_CLIPPING = 0.01
"""At most 1 % of samples at full scale: a few clipped peaks pass, a saturated clip does not."""
DEFAULT_MAX_SILENCE = 0.99
"""Silence ratio must stay at or below this: a fully silent clip (ratio 1.0) fails."""
MIN_SOURCE_SAMPLE_RATE = 1000
MAX_SOURCE_SAMPLE_RATE = 384000

_DATASOURCE_NAME = "audiomill"
_BATCH_DEFINITION_NAME = "whole_dataframe"
_LOCK = threading.RLock()
_engine: _Engine | None = None


@dataclass(frozen=True)
class ValidationOutcome:
    """The result of validating one DataFrame against one suite.

    Attributes
    ----------
    success : bool
        Whether every expectation passed.
    failures : dict[int, list[str]]
        Row position in the validated DataFrame -> names of the expectations that row failed,
        sorted. A failed table-level expectation (a missing column, say) lists every row.
    result_json : dict
        GE's validation result, ``ExpectationSuiteValidationResult.to_json_dict()``.
    statistics : dict[str, Any]
        GE's counts of evaluated, successful and unsuccessful expectations and success percent.
    """

    success: bool
    failures: dict[int, list[str]]
    result_json: dict[str, Any]
    statistics: dict[str, Any]


class _Engine:
    """One ephemeral GE context with a pandas datasource and one whole-frame batch per asset.

    ``gx.get_context`` also makes it GE's process-wide current context.
    """

    def __init__(self) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        config = DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        self.datasource: PandasDatasource = self.context.data_sources.add_pandas(_DATASOURCE_NAME)
        self.batch_definitions: dict[str, BatchDefinition] = {}

    def batch_definition(self, asset_name: str) -> BatchDefinition:
        """Return the whole-dataframe batch definition of ``asset_name``, creating it once."""
        if asset_name not in self.batch_definitions:
            asset = self.datasource.add_dataframe_asset(asset_name)
            self.batch_definitions[asset_name] = asset.add_batch_definition_whole_dataframe(
                _BATCH_DEFINITION_NAME
            )
        return self.batch_definitions[asset_name]


def _get_engine() -> _Engine:
    """Return the process-wide engine, creating it on first use (call with ``_LOCK`` held)."""
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def warm_up() -> None:
    """Create the process-wide GE context now, so the first validation does not pay for it."""
    with _LOCK:
        _get_engine()


def _check_name(config: ExpectationConfiguration) -> str:
    """Name an expectation ``<type>:<columns>``, or just ``<type>`` if table-level."""
    kwargs = config.kwargs
    columns = [kwargs[key] for key in ("column", "column_A", "column_B") if key in kwargs]
    columns.extend(kwargs.get("column_list") or [])
    return f"{config.type}:{','.join(columns)}" if columns else config.type


def _suite(name: str, checks: Sequence[tuple[Expectation, str]]) -> gx.ExpectationSuite:
    """Build a suite that belongs to no store from (expectation, explanation) pairs.

    Each expectation's description, which Data Docs shows, becomes ``<check name>: <explanation>``,
    so the names in :attr:`ValidationOutcome.failures` appear in the HTML report.
    """
    expectations = []
    for expectation, explanation in checks:
        expectation.description = f"{_check_name(expectation.configuration)}: {explanation}"
        expectations.append(expectation)
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    if len(suite.expectations) != len(expectations):
        raise ValueError(f"GE rejected expectations of suite {name!r}")
    return suite


def _not_null(columns: Sequence[str]) -> list[tuple[Expectation, str]]:
    """Not-null checks (the other column checks skip missing values)."""
    return [
        (gx.expectations.ExpectColumnValuesToNotBeNull(column=column), f"{column} is present")
        for column in columns
    ]


def segment_suite(max_duration_s: float = DEFAULT_MAX_DURATION_S) -> gx.ExpectationSuite:
    """Expectations on requested segments, before fetching.

    Parameters
    ----------
    max_duration_s : float
        Longest accepted ``end_s - start_s``, in seconds.

    Returns
    -------
    gx.ExpectationSuite
        Checks the columns of :data:`SEGMENT_COLUMNS` plus the helper columns ``duration_s`` and
        ``num_invalid_labels`` that :func:`validate_frame` derives. Rows with both ``start_s``
        and ``end_s`` missing (whole-file clips) skip the time checks; a row with only one of
        them fails ``end_s > start_s``.
    """
    if not max_duration_s > 0:
        raise ValueError(f"max_duration_s must be positive, got {max_duration_s}")
    ex = gx.expectations
    return _suite(
        SEGMENT_SUITE_NAME,
        [
            (
                ex.ExpectTableColumnsToMatchSet(
                    column_set=list(SEGMENT_COLUMNS), exact_match=False
                ),
                "the segment columns " + ", ".join(SEGMENT_COLUMNS) + " exist",
            ),
            *_not_null(["clip_id", "source", "labels", "num_unknown_labels", "split"]),
            (ex.ExpectColumnValuesToBeUnique(column="clip_id"), "clip ids are unique"),
            (
                ex.ExpectColumnValuesToMatchRegex(column="clip_id", regex=CLIP_ID_PATTERN),
                "clip ids are 1 to 200 letters, digits, '_', '.' or '-'",
            ),
            (
                ex.ExpectColumnValuesToNotMatchRegex(column="clip_id", regex=r"^\."),
                "clip ids do not start with '.'",
            ),
            (
                ex.ExpectColumnValuesToBeBetween(column="start_s", min_value=0.0),
                "start_s is at least 0",
            ),
            (
                ex.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="end_s",
                    column_B="start_s",
                    or_equal=False,
                    ignore_row_if="both_values_are_missing",
                ),
                "end_s is greater than start_s (both missing: a whole-file clip)",
            ),
            (
                ex.ExpectColumnValuesToBeBetween(
                    column="duration_s", max_value=float(max_duration_s)
                ),
                f"end_s - start_s is at most {max_duration_s:g} s",
            ),
            (
                ex.ExpectColumnValuesToBeBetween(
                    column="num_unknown_labels", min_value=0, max_value=0
                ),
                "every label is in the class map",
            ),
            (
                ex.ExpectColumnValuesToBeBetween(
                    column="num_invalid_labels", min_value=0, max_value=0
                ),
                "labels is a list of non-negative integer class indices",
            ),
        ],
    )


def clip_suite(
    target_sr: int,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    max_coverage: float = DEFAULT_MAX_COVERAGE,
    max_clipping: float = DEFAULT_MAX_CLIPPING,
    max_silence: float = DEFAULT_MAX_SILENCE,
) -> gx.ExpectationSuite:
    """Expectations on decoded clip metadata.

    Parameters
    ----------
    target_sr : int
        The output sample rate every clip must have.
    min_coverage, max_coverage : float
        Accepted range of ``coverage = delivered_seconds / requested_seconds``.
    max_clipping : float
        Largest accepted fraction of full-scale samples (default 0.01).
    max_silence : float
        Largest accepted fraction of silent samples (default 0.99: fully silent clips fail).

    Returns
    -------
    gx.ExpectationSuite
        Checks the columns of :data:`CLIP_COLUMNS`: none null, unique clip ids, mono output at
        ``target_sr``, a source rate in [1000, 384000] Hz, and the ranges above.
    """
    if not 0 <= min_coverage <= max_coverage:
        raise ValueError(
            f"need 0 <= min_coverage <= max_coverage, got {min_coverage}, {max_coverage}"
        )
    ex = gx.expectations
    between = ex.ExpectColumnValuesToBeBetween
    return _suite(
        CLIP_SUITE_NAME,
        [
            (
                ex.ExpectTableColumnsToMatchSet(column_set=list(CLIP_COLUMNS), exact_match=False),
                "the clip columns " + ", ".join(CLIP_COLUMNS) + " exist",
            ),
            *_not_null(CLIP_COLUMNS),
            (ex.ExpectColumnValuesToBeUnique(column="clip_id"), "clip ids are unique"),
            (
                ex.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=[int(target_sr)]),
                f"output sample rate is {int(target_sr)} Hz",
            ),
            (ex.ExpectColumnValuesToBeInSet(column="channels", value_set=[1]), "output is mono"),
            (
                between(
                    column="source_sample_rate",
                    min_value=MIN_SOURCE_SAMPLE_RATE,
                    max_value=MAX_SOURCE_SAMPLE_RATE,
                ),
                f"source rate is {MIN_SOURCE_SAMPLE_RATE} to {MAX_SOURCE_SAMPLE_RATE} Hz",
            ),
            (between(column="source_channels", min_value=1), "source has a channel"),
            (
                between(column="requested_seconds", min_value=0.0, strict_min=True),
                "requested duration is positive",
            ),
            (
                between(column="delivered_seconds", min_value=0.0),
                "delivered duration is not negative",
            ),
            (
                between(
                    column="coverage", min_value=float(min_coverage), max_value=float(max_coverage)
                ),
                f"delivered/requested is {min_coverage:g} to {max_coverage:g}",
            ),
            (between(column="peak", min_value=0.0, max_value=1.0), "peak is at most full scale"),
            (
                between(column="clipping_ratio", min_value=0.0, max_value=float(max_clipping)),
                f"at most {max_clipping:g} of the samples clip",
            ),
            (
                between(column="silence_ratio", min_value=0.0, max_value=float(max_silence)),
                f"at most {max_silence:g} of the samples are silent",
            ),
        ],
    )


def _count_invalid_labels(labels: Any) -> float:
    """Count entries of a label list that are not non-negative integers (NaN if null)."""
    if not isinstance(labels, list | tuple | np.ndarray):
        return math.nan if pd.isna(labels) else 1.0
    return float(
        sum(
            isinstance(label, bool | np.bool_)
            or not isinstance(label, numbers.Integral)
            or label < 0
            for label in labels
        )
    )


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Copy ``df`` with a fresh index, the row-position column and derived helper columns."""
    frame = df.reset_index(drop=True)
    frame[ROW_COLUMN] = np.arange(len(frame), dtype=np.int64)
    if {"start_s", "end_s"} <= set(frame.columns):
        start = pd.to_numeric(frame["start_s"], errors="coerce").astype(float)
        end = pd.to_numeric(frame["end_s"], errors="coerce").astype(float)
        frame["duration_s"] = end - start
    if "labels" in frame.columns:
        frame["num_invalid_labels"] = np.array(
            [_count_invalid_labels(labels) for labels in frame["labels"]], dtype=float
        )
    return frame


def _row_failures(result: ExpectationSuiteValidationResult, num_rows: int) -> dict[int, list[str]]:
    """Map each failing row position to the names of the expectations it failed."""
    failures: dict[int, set[str]] = {}
    for expectation_result in result.results:
        if expectation_result.success:
            continue
        name = _check_name(expectation_result.expectation_config)
        raised = bool((expectation_result.exception_info or {}).get("raised_exception"))
        index_list = (expectation_result.result or {}).get("unexpected_index_list")
        if raised or not index_list:
            rows: Sequence[int] = range(num_rows)
        else:
            rows = [int(entry[ROW_COLUMN]) for entry in index_list]
        for row in rows:
            failures.setdefault(row, set()).add(name)
    return {row: sorted(names) for row, names in sorted(failures.items())}


def validate_frame(
    df: pd.DataFrame, suite: gx.ExpectationSuite, *, asset_name: str
) -> ValidationOutcome:
    """Validate a DataFrame with Great Expectations.

    Parameters
    ----------
    df : pandas.DataFrame
        The rows to check; not modified. Helper columns (``row_position``, and ``duration_s``
        and ``num_invalid_labels`` where their sources exist) are added to a copy.
    suite : gx.ExpectationSuite
        For example :func:`segment_suite` or :func:`clip_suite`.
    asset_name : str
        Name of the dataframe asset in the cached context (for example ``"segments"``).

    Returns
    -------
    ValidationOutcome
        Overall success, failures by row position, GE's result JSON and statistics.
    """
    frame = _prepare(df)
    index_columns = [ROW_COLUMN, *(["clip_id"] if "clip_id" in frame.columns else [])]
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": index_columns}
    with _LOCK:
        batch = (
            _get_engine()
            .batch_definition(asset_name)
            .get_batch(batch_parameters={"dataframe": frame})
        )
        result = batch.validate(suite, result_format=result_format)
    return ValidationOutcome(
        success=bool(result.success),
        failures=_row_failures(result, len(frame)),
        result_json=result.to_json_dict(),
        statistics=dict(result.statistics),
    )


def render_html(result_json: Mapping[str, Any]) -> str:
    """Render a validation result (GE JSON) as a Data Docs page with GE's own renderers."""
    with _LOCK:  # GE's renderers are not documented as thread-safe
        result = expectationSuiteValidationResultSchema.load(dict(result_json))
        document = ValidationResultsPageRenderer().render(result)
        return DefaultJinjaPageView().render(document)
