"""The panel's sign-in guard, on a fake clock: delays, lockouts, the overall limit, bounded memory,
the logs; the client address it counts by; and its settings."""

from __future__ import annotations

import logging
import threading

import pytest

from telemetry.config import ConfigError
from telemetry.panel.clients import UNKNOWN, client_address
from telemetry.panel.settings import PanelSettings
from telemetry.panel.signin import Attempt, SignInGuard, SignInPolicy, Verdict, clean_name
from telemetry.testing import FakeClock

CLIENT = "203.0.113.7"
PASSWORD = "correct-horse-battery"


class Check:
    """The password comparison, counting its calls: a refused attempt must not make one."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.password == PASSWORD


def wrong(guard: SignInGuard, client: str = CLIENT, name: str = "mallory") -> Attempt:
    return guard.attempt(client, name, Check("guess"))


def right(guard: SignInGuard, client: str = CLIENT) -> Attempt:
    return guard.attempt(client, "ada", Check(PASSWORD))


def throttled(seconds: int) -> Attempt:
    return Attempt(Verdict.THROTTLED, retry_after=seconds)


WRONG = Attempt(Verdict.WRONG)
ACCEPTED = Attempt(Verdict.ACCEPTED)


# -- per client ----------------------------------------------------------------------------------


def test_delays_double_after_each_failure_up_to_the_cap() -> None:
    clock = FakeClock()
    guard = SignInGuard(clock=clock)
    waits = []
    for _ in range(9):
        assert wrong(guard) == WRONG
        refused = wrong(guard)
        assert refused.verdict is Verdict.THROTTLED
        waits.append(refused.retry_after)
        clock.advance(refused.retry_after - 0.5)
        assert wrong(guard) == throttled(1), "not a moment early"
        clock.advance(0.5)
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_a_lockout_after_max_failures_refuses_even_the_right_password_unchecked() -> None:
    clock = FakeClock()
    guard = SignInGuard(SignInPolicy(max_failures=3, lockout_seconds=600), clock=clock)
    for wait in (1, 2, 0):
        assert wrong(guard) == WRONG
        clock.advance(wait)
    check = Check(PASSWORD)
    assert guard.attempt(CLIENT, "ada", check) == throttled(600)
    clock.advance(599)
    assert guard.attempt(CLIENT, "ada", check) == throttled(1)
    assert check.calls == 0, "a refused attempt never compares the password"
    clock.advance(1)
    assert guard.attempt(CLIENT, "ada", check) == ACCEPTED
    assert check.calls == 1


def test_after_a_lockout_each_further_failure_locks_again_until_the_streak_is_forgotten() -> None:
    clock = FakeClock()
    guard = SignInGuard(SignInPolicy(max_failures=2, lockout_seconds=600), clock=clock)
    wrong(guard)
    clock.advance(1)
    wrong(guard)
    clock.advance(600)
    assert wrong(guard) == WRONG
    assert wrong(guard) == throttled(600), "the streak outlives the lockout"
    clock.advance(600 + 600)  # the lockout, then as long again without a failure
    assert wrong(guard) == WRONG
    assert wrong(guard) == throttled(1), "forgotten: a first failure again"
    assert guard.remembered_clients == 1


def test_a_success_resets_the_streak() -> None:
    clock = FakeClock()
    guard = SignInGuard(clock=clock)
    for wait in (1, 2, 4, 8):
        wrong(guard)
        clock.advance(wait)
    assert right(guard) == ACCEPTED
    assert guard.remembered_clients == 0
    assert wrong(guard) == WRONG
    assert wrong(guard) == throttled(1)


def test_clients_are_counted_apart() -> None:
    clock = FakeClock()
    guard = SignInGuard(SignInPolicy(max_failures=2, global_delay_seconds=0), clock=clock)
    wrong(guard)
    clock.advance(1)
    wrong(guard)
    assert right(guard) == throttled(900)
    assert right(guard, "198.51.100.1") == ACCEPTED


# -- all clients together ------------------------------------------------------------------------


def test_any_failure_delays_every_client_a_little() -> None:
    clock = FakeClock()
    guard = SignInGuard(clock=clock)
    wrong(guard, "198.51.100.1")
    assert right(guard, "198.51.100.2") == throttled(1)  # 0.5 s, rounded up
    clock.advance(0.5)
    assert right(guard, "198.51.100.2") == ACCEPTED


def test_guessing_from_many_clients_locks_every_client_out() -> None:
    clock = FakeClock()
    policy = SignInPolicy(global_max_failures=20, lockout_seconds=600)
    guard = SignInGuard(policy, clock=clock)
    waits = []
    for n in range(20):
        assert wrong(guard, f"198.51.100.{n}") == WRONG, "each client fails only once"
        waits.append(right(guard, "192.0.2.1").retry_after)
        clock.advance(5)
    assert waits[:6] == [1, 1, 2, 4, 5, 5] and waits[-2:] == [5, 600]
    check = Check(PASSWORD)
    assert guard.attempt("192.0.2.1", "ada", check) == throttled(595)
    assert check.calls == 0
    clock.advance(595)
    assert right(guard, "192.0.2.1") == ACCEPTED
    assert wrong(guard, "198.51.100.99") == WRONG
    assert right(guard, "192.0.2.1") == throttled(1), "the success reset the overall streak"


# -- bounded memory and threads ------------------------------------------------------------------


def test_the_table_of_clients_is_bounded_and_forgets_the_oldest() -> None:
    clock = FakeClock()
    policy = SignInPolicy(
        delay_seconds=100,
        max_delay_seconds=100,
        global_delay_seconds=0,
        global_max_failures=1_000_000,  # this test is about the table, not the overall limit
        max_clients=50,
    )
    guard = SignInGuard(policy, clock=clock)
    for n in range(1000):
        wrong(guard, f"2001:db8::{n:x}")
        assert guard.remembered_clients <= 50
    assert guard.remembered_clients == 50
    assert wrong(guard, "2001:db8::3e7") == throttled(100), "the newest is remembered"
    assert wrong(guard, "2001:db8::0") == WRONG, "the oldest was forgotten"


def test_quiet_clients_are_forgotten() -> None:
    clock = FakeClock()
    guard = SignInGuard(SignInPolicy(lockout_seconds=60), clock=clock)
    for n in range(10):
        wrong(guard, f"198.51.100.{n}")
        clock.advance(5)
    clock.advance(61)
    wrong(guard, "192.0.2.1")
    assert guard.remembered_clients == 1


def test_concurrent_attempts_are_each_counted() -> None:
    threads, each = 8, 50
    policy = SignInPolicy(
        delay_seconds=0,
        max_delay_seconds=0,
        global_delay_seconds=0,
        global_max_delay_seconds=0,
        max_failures=threads * each,
        global_max_failures=threads * each,
    )
    guard = SignInGuard(policy, clock=FakeClock())
    verdicts: list[Verdict] = []

    def guess() -> None:
        mine = [wrong(guard).verdict for _ in range(each)]
        verdicts.extend(mine)

    workers = [threading.Thread(target=guess) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert verdicts == [Verdict.WRONG] * (threads * each)
    assert right(guard) == throttled(900), "the last of them, exactly, started the lockout"


# -- logs ----------------------------------------------------------------------------------------


def test_failures_are_logged_with_the_client_and_name_never_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    guard = SignInGuard(SignInPolicy(max_failures=2), clock=clock)
    secret = "hunter2-but-longer"
    with caplog.at_level(logging.DEBUG, logger="telemetry.panel"):
        guard.attempt(CLIENT, "mallory\nFAKE admin signed in\x1b[2J" + "x" * 100, Check(secret))
        guard.attempt(CLIENT, "mallory", Check(secret))  # refused: delayed
        clock.advance(1)
        guard.attempt(CLIENT, "mallory", Check(secret))  # the lockout starts
        clock.advance(900)
        guard.attempt(CLIENT, "ada", Check(PASSWORD))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings
    first, second, lockout = warnings
    assert first.startswith(
        "panel sign-in refused: wrong password for operator 'malloryFAKE admin signed in[2Jxxx"
    )
    assert f"…' from {CLIENT} (1 in a row; 1 overall)" in first
    assert f"'mallory' from {CLIENT} (2 in a row" in second
    assert (
        lockout
        == f"panel sign-in: client {CLIENT} locked out for 900 s after 2 wrong passwords in a row"
    )
    assert all("\n" not in r.getMessage() for r in caplog.records), "no forged log lines"
    assert secret not in caplog.text and PASSWORD not in caplog.text
    assert any(f"operator 'ada' signed in from {CLIENT}" in r.getMessage() for r in caplog.records)


def test_an_overall_lockout_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    guard = SignInGuard(SignInPolicy(max_failures=2, global_max_failures=3), clock=clock)
    with caplog.at_level(logging.WARNING, logger="telemetry.panel"):
        for n in range(3):
            wrong(guard, f"198.51.100.{n}")
            clock.advance(5)
        for n in range(10):
            assert wrong(guard, f"192.0.2.{n}").verdict is Verdict.THROTTLED
    lockouts = [r.getMessage() for r in caplog.records if "locked out" in r.getMessage()]
    assert lockouts == [
        "panel sign-in: every client locked out for 900 s after 3 wrong passwords in a row"
    ]
    assert len(caplog.records) == 4, "refused attempts are not warned about"


def test_names_are_cleaned_for_the_log() -> None:
    assert clean_name("ada") == "ada"
    assert clean_name("a\r\nb\tc\x00d\u202ee\u2028f") == "abcdef"
    assert clean_name("é" * 64) == "é" * 64
    assert clean_name("é" * 65) == "é" * 64 + "…"


# -- the client's address ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("198.51.100.7", [], 0, "198.51.100.7"),
        (None, [], 0, UNKNOWN),  # Streamlit says None for a local connection
        ("not an address", [], 0, UNKNOWN),
        ("198.51.100.7", ["203.0.113.9"], 0, "198.51.100.7"),  # the header is the client's to write
        ("198.51.100.7", ["203.0.113.9"], 1, "203.0.113.9"),
        (None, ["192.0.2.66, 203.0.113.9"], 1, "203.0.113.9"),  # the first entry is forged
        (None, ["192.0.2.66, 203.0.113.9", "10.0.0.2"], 2, "203.0.113.9"),
        ("198.51.100.7", ["203.0.113.9"], 2, "198.51.100.7"),  # too short: not through the proxies
        ("198.51.100.7", ["bogus"], 1, "198.51.100.7"),
        ("198.51.100.7", ["203.0.113.9:5123"], 1, "203.0.113.9"),
        ("198.51.100.7", ["[2001:DB8:0::1]:443"], 1, "2001:db8::1"),
        ("::ffff:198.51.100.7", [], 0, "198.51.100.7"),
        (" 2001:0db8::0001 ", [], 0, "2001:db8::1"),
    ],
)
def test_the_client_address(peer: str | None, forwarded: list[str], trusted: int, expected: str) -> None:
    assert client_address(peer, forwarded, trusted) == expected


# -- settings ------------------------------------------------------------------------------------


def test_sign_in_settings_defaults_and_environment() -> None:
    defaults = PanelSettings.from_env({})
    assert defaults.sign_in == SignInPolicy()
    assert (defaults.sign_in.max_failures, defaults.sign_in.lockout_seconds) == (10, 900.0)
    assert defaults.trusted_proxies == 0
    settings = PanelSettings.from_env(
        {
            "PANEL_SIGNIN_DELAY_SECONDS": "2",
            "PANEL_SIGNIN_MAX_DELAY_SECONDS": "60",
            "PANEL_SIGNIN_MAX_FAILURES": "5",
            "PANEL_SIGNIN_LOCKOUT_SECONDS": "3600",
            "PANEL_SIGNIN_GLOBAL_DELAY_SECONDS": "0.25",
            "PANEL_SIGNIN_GLOBAL_MAX_DELAY_SECONDS": "2",
            "PANEL_SIGNIN_GLOBAL_MAX_FAILURES": "50",
            "PANEL_SIGNIN_MAX_CLIENTS": "1000",
            "PANEL_TRUSTED_PROXIES": "1",
        }
    )
    assert settings.sign_in == SignInPolicy(
        delay_seconds=2,
        max_delay_seconds=60,
        max_failures=5,
        lockout_seconds=3600,
        global_delay_seconds=0.25,
        global_max_delay_seconds=2,
        global_max_failures=50,
        max_clients=1000,
    )
    assert settings.trusted_proxies == 1


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PANEL_SIGNIN_MAX_FAILURES": "0"}, "PANEL_SIGNIN_MAX_FAILURES: must be within [1, 1000]"),
        ({"PANEL_SIGNIN_MAX_FAILURES": "2.5"}, "PANEL_SIGNIN_MAX_FAILURES: not a whole number"),
        ({"PANEL_SIGNIN_LOCKOUT_SECONDS": "soon"}, "PANEL_SIGNIN_LOCKOUT_SECONDS: not a number"),
        ({"PANEL_SIGNIN_LOCKOUT_SECONDS": "nan"}, "PANEL_SIGNIN_LOCKOUT_SECONDS: must be within"),
        ({"PANEL_SIGNIN_DELAY_SECONDS": "-1"}, "PANEL_SIGNIN_DELAY_SECONDS: must be within [0, 300]"),
        (
            {"PANEL_SIGNIN_DELAY_SECONDS": "40"},
            "PANEL_SIGNIN_MAX_DELAY_SECONDS: must be >= PANEL_SIGNIN_DELAY_SECONDS (40.0)",
        ),
        (
            {"PANEL_SIGNIN_GLOBAL_MAX_DELAY_SECONDS": "inf"},
            "PANEL_SIGNIN_GLOBAL_MAX_DELAY_SECONDS: must be within [0, 3600]",
        ),
        (
            {"PANEL_SIGNIN_GLOBAL_MAX_FAILURES": "5"},
            "PANEL_SIGNIN_GLOBAL_MAX_FAILURES: must be >= PANEL_SIGNIN_MAX_FAILURES (10)",
        ),
        ({"PANEL_SIGNIN_MAX_CLIENTS": "0"}, "PANEL_SIGNIN_MAX_CLIENTS: must be within"),
        ({"PANEL_TRUSTED_PROXIES": "-1"}, "PANEL_TRUSTED_PROXIES: must be within [0, 10]"),
        ({"PANEL_TRUSTED_PROXIES": "one"}, "PANEL_TRUSTED_PROXIES: not a number"),
    ],
)
def test_bad_sign_in_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        PanelSettings.from_env(environ)
    assert str(raised.value).startswith(message)
