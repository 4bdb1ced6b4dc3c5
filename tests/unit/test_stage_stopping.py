"""A stop signal while a stage runs becomes a stop request for the stage, never an exception in the host."""

import os
import signal
import threading
import time

from backpropagate.runtimes.stopping import Stopper


def _wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_ctrl_c_while_the_host_holds_a_lock_lets_it_finish_and_asks_the_stage_to_stop():
    sent = []
    stopper = Stopper(sent.append, grace_s=60)
    lock = threading.Lock()
    finished = False
    with stopper.listening():
        with lock:  # a sink in the middle of an event
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            finished = True
        assert _wait_for(lambda: sent == ["SIGINT"])
    stopper.close()
    assert finished and not lock.locked()


def test_sigterm_and_sighup_ask_as_ctrl_c_does_and_a_third_request_kills():
    sent = []
    stopper = Stopper(sent.append, grace_s=60)
    with stopper.listening():
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            os.kill(os.getpid(), number)
            time.sleep(0.05)
        assert _wait_for(lambda: len(sent) == 3)
    stopper.close()
    assert sent == ["SIGINT", "SIGINT", "SIGKILL"]


def test_a_stage_that_does_not_stop_within_the_grace_is_killed():
    sent = []
    stopper = Stopper(sent.append, grace_s=0.2)
    with stopper.listening():
        os.kill(os.getpid(), signal.SIGINT)
        assert _wait_for(lambda: sent == ["SIGINT", "SIGKILL"])
    assert stopper.overdue


def test_the_handlers_are_restored_after_the_stage_and_an_ignored_signal_stays_ignored():
    before = signal.getsignal(signal.SIGINT)
    previous_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sent = []
        stopper = Stopper(sent.append, grace_s=60)
        with stopper.listening():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.1)
        stopper.close()
        assert sent == []
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGHUP, previous_hup)


def test_off_the_main_thread_nothing_is_installed():
    seen = []

    def job():
        stopper = Stopper(lambda name: None, grace_s=60)
        with stopper.listening():
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    assert seen == [before]
