"""Terminal progress bars: on only when a caller turns them on, and the CLI turns them
on only for a terminal that no Prefect worker owns; while on, every reporting callback
draws and log lines print above the bars."""

import io
import logging
import sys

from rich.console import Console
from rich.logging import RichHandler

from sdfb.progress import reporting, terminal_bars, wanted


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def terminal_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, color_system=None, width=100)


def test_bars_are_wanted_on_a_terminal_but_not_under_a_worker_nor_when_output_goes_to_a_file():
    assert wanted(_Terminal(), {})
    assert not wanted(io.StringIO(), {})
    assert not wanted(_Terminal(), {"PREFECT__FLOW_RUN_ID": "0f3c"})  # a flow run a worker started


def test_sdfb_progress_decides_either_way():
    assert wanted(io.StringIO(), {"SDFB_PROGRESS": "1"})
    assert not wanted(_Terminal(), {"SDFB_PROGRESS": "0"})


def test_without_bars_a_loop_gets_its_callback_back_unchanged():
    def inner(done, total):
        pass

    assert reporting("rollouts", inner) is inner
    assert reporting("rollouts") is None


def test_with_bars_each_report_draws_and_reaches_the_inner_callback_and_a_finished_bar_leaves_a_summary():
    seen, console = [], terminal_console()
    with terminal_bars(console):
        progress = reporting("round 1 rollouts", lambda done, total: seen.append((done, total)))
        progress(1, 4)
        progress(4, 4)
        progress(4, 4)  # a repeated last report (vLLM and the trainer both send one) draws nothing new
        quiet = reporting("scoring")
        quiet(2, 2)
    assert seen == [(1, 4), (4, 4), (4, 4)]
    text = console.file.getvalue()
    assert text.count("round 1 rollouts: 4/4 in") == 1 and "scoring: 2/2 in" in text
    assert reporting("after", None) is None  # off again


def test_log_lines_print_above_the_bars_and_handlers_are_restored_after():
    plain = logging.StreamHandler(sys.__stderr__)
    rich = RichHandler(console=Console(file=sys.__stderr__))
    logger = logging.getLogger("sdfb.test_progress")
    logger.addHandler(plain)
    logger.addHandler(rich)
    logger.propagate, logger.level = False, logging.INFO
    console = terminal_console()
    try:
        with terminal_bars(console):
            reporting("training")(1, 3)
            logger.info("a line from the log")
        assert plain.stream is sys.__stderr__ and rich.console.file is sys.__stderr__
    finally:
        logger.removeHandler(plain)
        logger.removeHandler(rich)
    assert (
        console.file.getvalue().count("a line from the log") == 2
    )  # both handlers, through the bars' console
