"""The bars a job optimizes on, read straight from the dataset files.

Workers do not go through the dataset catalog: visibility was checked when the job was
created, and a `stratopt worker` on another machine has no caller to check it for. The
files must therefore be reachable from every worker (one machine, or a shared folder).
"""

from __future__ import annotations

from stratopt.data.bars import Bars
from stratopt.data.resample import resample
from stratopt.data.storage import DatasetStore
from stratopt.optimize.spec import StudySpec


def load_bars(store: DatasetStore, spec: StudySpec) -> Bars:
    """The job's period, resampled when it asks for another timeframe than the dataset's."""
    bars = store.load(spec.dataset_id)
    if spec.start_ns or spec.end_ns:
        bars = bars.between(spec.start_ns or None, spec.end_ns or None)
    if spec.timeframe and spec.timeframe != spec.dataset_timeframe:
        bars = resample(bars, spec.timeframe)
    return bars
