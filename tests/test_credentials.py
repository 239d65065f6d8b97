"""Secrets and the password strength rule (the Go Kahuna's, 70 bits)."""

import gevent
import pytest

from kahuna import credentials
from kahuna.errors import Unprocessable


@pytest.mark.parametrize("password", ["password", "Password1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                      "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjkl", "0123456789012345"])
def test_weak_passwords_are_refused_with_hints(password):
    with pytest.raises(Unprocessable, match="insecure password, try"):
        credentials.check_password_strength(password)


@pytest.mark.parametrize("password", ["Tr0ub4dor&3-horse-Battery", "correct horse battery staple",
                                      "Xk9#mP2$vL8@nQ4!"])
def test_strong_passwords_pass(password):
    credentials.check_password_strength(password)


def test_hints_name_what_is_missing():
    with pytest.raises(Unprocessable) as error:
        credentials.check_password_strength("abcxyz")
    assert "using uppercase letters" in error.value.reason
    assert "using numbers" in error.value.reason


def test_generated_secrets():
    passwords = {credentials.generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(credentials.password_entropy(p) >= 70 and p.isalnum() for p in passwords)
    key = credentials.generate_api_key()
    assert len(key) == 64 and key.isalnum()
    assert len(credentials.generate_signing_key()) >= 64
    assert credentials.digest("x") == credentials.digest("x") != credentials.digest("y")


def test_bcrypt_runs_off_the_hub():
    hasher = credentials.PasswordHasher(cost=12)
    ticks = []

    def ticker():
        for _ in range(200):
            ticks.append(1)
            gevent.sleep(0.001)

    tick = gevent.spawn(ticker)
    hashed = hasher.hash("Tr0ub4dor&3-horse-Battery")
    # The hub kept running other greenlets during a ~250 ms hash.
    assert len(ticks) > 10
    tick.kill()
    assert hasher.verify("Tr0ub4dor&3-horse-Battery", hashed)
    assert not hasher.verify("wrong", hashed)
    assert not hasher.verify("anything", None)
    assert not hasher.verify("x" * 100, hashed)
