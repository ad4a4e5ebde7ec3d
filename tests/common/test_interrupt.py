"""`xsearch.common.interrupt`: a signal's stop survives a KeyboardInterrupt that was lost."""

import signal
import threading

import pytest

from xsearch.common import interrupt
from xsearch.study.keras_callbacks import StopRequested


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(interrupt, "_requested", threading.Event())
    previous = signal.signal(signal.SIGTERM, interrupt.on_signal)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_nothing_is_raised_until_a_signal_asks_to_stop(fresh):
    interrupt.raise_if_requested()
    StopRequested().on_train_batch_end(0)


def test_a_sigterm_whose_keyboard_interrupt_was_swallowed_stops_training_after_the_next_batch(
    fresh,
):
    # the handler's own KeyboardInterrupt, lost when it lands where Python ignores errors
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        StopRequested().on_train_batch_end(0)
    with pytest.raises(KeyboardInterrupt):
        interrupt.raise_if_requested()  # and after the trial, and in the supervisor's loop
