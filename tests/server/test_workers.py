"""The `workers` setting and the supervisor's parts: the setting's sources and its errors, the ports
reserved with SO_REUSEPORT, the restart backoff, the worker field in the logs, and the supervisor run
against stand-in worker commands (a worker that cannot start, one that keeps dying)."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys

import pytest

from toolwire.server import workers
from toolwire.server.logs import WORKER_TEXT_FORMAT, JsonFormatter, WorkerField
from toolwire.server.options import SettingsError
from toolwire.server.settings import ServerSettings
from toolwire.server.setup import check_config, settings_from


def test_workers_is_1_by_default_and_comes_from_each_source(tmp_path):
    assert settings_from(None, {}, {}).workers == 1
    path = tmp_path / "toolwire.toml"
    path.write_text("[server]\nworkers = 4\n")
    assert settings_from(path, {}, {}).workers == 4
    assert settings_from(path, {"TOOLWIRE_WORKERS": "3"}, {}).workers == 3
    assert settings_from(path, {"TOOLWIRE_WORKERS": "3"}, {"workers": 2}).workers == 2
    exit_code, text = check_config(path)
    assert exit_code == 0 and "workers 4" in text


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"TOOLWIRE_WORKERS": "0"}, "environment variable TOOLWIRE_WORKERS must be at least 1 (got 0)"),
        ({"TOOLWIRE_WORKERS": "two"}, "TOOLWIRE_WORKERS must be a whole number (got 'two')"),
        ({"TOOLWIRE_WORKERS": "2", "TOOLWIRE_LISTEN": "unix:/tmp/t.sock"},
         "workers = 2 needs TCP listen addresses only: unix:/tmp/t.sock cannot be shared"),
    ],
)  # fmt: skip
def test_a_workers_value_that_cannot_work_says_what_to_change(environment, message):
    with pytest.raises(SettingsError) as raised:
        settings_from(None, environment, {})
    assert message in str(raised.value)


def test_one_worker_may_listen_on_a_unix_socket():
    assert settings_from(None, {"TOOLWIRE_LISTEN": "unix:/tmp/t.sock"}, {}).workers == 1


def test_port_0_is_chosen_once_and_held_for_the_workers():
    held, listen = workers.reserve_ports(["127.0.0.1:0"])
    try:
        port = int(listen[0].rsplit(":", 1)[1])
        assert port > 0 and listen == (f"127.0.0.1:{port}",)
        with socket.socket() as worker:  # a worker binds the same port with SO_REUSEPORT and listens
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", port))
            worker.listen()
        with socket.socket() as other, pytest.raises(OSError, match="Address already in use"):  # nobody else
            other.bind(("127.0.0.1", port))
    finally:
        for each in held:
            each.close()


def test_a_port_in_use_is_an_error_naming_the_address():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="the address is in use") as raised:
            workers.reserve_ports(["127.0.0.1:0", f"127.0.0.1:{port}"])
    assert (
        str(raised.value)
        == f"could not listen on 127.0.0.1:{port}: the address is in use or not available here"
    )


def test_the_restart_delay_grows_then_gives_up():
    delays = [workers.restart_delay(count) for count in range(workers.MOST_QUICK_EXITS + 1)]
    assert delays[:3] == [0.5, 1.0, 2.0] and all(delay <= 10 for delay in delays[:-1])
    assert delays[-1] is None


def record_line(log_format: str) -> str:
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(WORKER_TEXT_FORMAT))
    handler.addFilter(WorkerField(2))
    logger = logging.getLogger(f"test-workers-{log_format}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.warning("hello")
    return output.getvalue()


def test_each_line_of_a_worker_names_it():
    assert json.loads(record_line("json"))["worker"] == 2
    assert " WARNING worker 2 test-workers-text: hello" in record_line("text")


def supervisor(script: str) -> workers.Supervisor:
    running = workers.Supervisor(ServerSettings(listen=("127.0.0.1:1",), workers=2))
    running.command = (sys.executable, "-c", script)
    return running


async def test_a_worker_that_cannot_start_stops_the_others_with_its_exit_code():
    script = "import sys, time\nif sys.argv[1] == '2': sys.exit(3)\ntime.sleep(60)"
    assert await supervisor(script).run() == 3


async def test_workers_dying_right_after_start_make_the_supervisor_give_up(monkeypatch, caplog):
    monkeypatch.setattr(workers, "restart_delay", lambda count: None if count >= 3 else 0.01)
    script = "print('toolwire listening on 127.0.0.1:1', flush=True)"
    assert await supervisor(script).run() == workers.EXIT_GAVE_UP
    assert "3 times in a row right after start: giving up" in caplog.text
