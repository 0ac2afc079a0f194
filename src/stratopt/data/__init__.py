"""Bar datasets: import (CSV/Parquet/streamed uploads), validation, resampling, synthetic
markets and on-disk storage. Depends only on numpy, pandas and pyarrow.
"""

from stratopt.data.bars import Bars
from stratopt.data.errors import (
    BarValidationError,
    CorruptDatasetError,
    DataError,
    DatasetNotFoundError,
    ImportFormatError,
    InvalidDatasetIdError,
    Problem,
    TimeframeError,
    UploadTooLargeError,
)
from stratopt.data.importers import (
    BarStreamImporter,
    detect_format,
    import_bars,
    import_csv,
    import_parquet,
)
from stratopt.data.resample import resample
from stratopt.data.storage import DatasetStore, StoredInfo, check_dataset_id
from stratopt.data.synthetic import SampleDataset, generate_bars, sample_datasets
from stratopt.data.timeframes import format_timeframe, parse_timeframe
from stratopt.data.validate import validate_arrays, validate_bars

__all__ = [
    "BarStreamImporter",
    "BarValidationError",
    "Bars",
    "CorruptDatasetError",
    "DataError",
    "DatasetNotFoundError",
    "DatasetStore",
    "ImportFormatError",
    "InvalidDatasetIdError",
    "Problem",
    "SampleDataset",
    "StoredInfo",
    "TimeframeError",
    "UploadTooLargeError",
    "check_dataset_id",
    "detect_format",
    "format_timeframe",
    "generate_bars",
    "import_bars",
    "import_csv",
    "import_parquet",
    "parse_timeframe",
    "resample",
    "sample_datasets",
    "validate_arrays",
    "validate_bars",
]
