"""The benchmark's choice of toolwire process counts (bench/go_load.py) and the core count its cost
figure is set against (bench/report_go.py), so that `make bench` on a bigger machine measures it."""

from __future__ import annotations

import pytest

from bench import report_go
from bench.go_load import worker_counts


@pytest.mark.parametrize(
    ("cores", "expected"), [(1, [1, 2]), (2, [1, 2]), (4, [1, 2]), (8, [1, 5]), (16, [1, 10])]
)
def test_by_default_1_process_and_two_thirds_of_the_cores(cores, expected):
    assert worker_counts({}, cores) == expected


def test_bench_workers_picks_the_counts():
    assert worker_counts({"BENCH_WORKERS": "4, 1,2,4"}, 2) == [1, 2, 4]
    assert worker_counts({"BENCH_WORKERS": "  "}, 2) == [1, 2]


@pytest.mark.parametrize("text", ["two", "0,2", "1;2", ","])
def test_bench_workers_that_are_not_process_counts_are_refused(text):
    with pytest.raises(ValueError, match="BENCH_WORKERS must be process counts"):
        worker_counts({"BENCH_WORKERS": text}, 2)


def test_the_cost_in_cores_names_the_cores_of_the_machine_that_ran_it():
    floor = {"sweep": {500: {"server_cpu_us_per_chunk": 150.0, "provider_cpu_us_per_chunk": 50.0,
                             "cpu_us_per_message": 60.0}}}  # fmt: skip
    text = report_go.capacity(floor, cores=8)
    assert "adds up to 2.6 cores, on a 8-core machine" in text
    assert report_go.capacity(None, cores=8) == ""
