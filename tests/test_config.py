"""Configuration: defaults that work, refused mistakes, secrets from the environment."""

from pathlib import Path

import pytest

from kahuna.config import ConfigError, load

SAMPLE = Path(__file__).parents[1] / "kahuna" / "data" / "kahuna.yml"


def write(tmp_path, text):
    path = tmp_path / "kahuna.yml"
    path.write_text(text)
    return path


def test_defaults_and_the_sample_load():
    defaults = load(None, environ={})
    assert defaults.global_.http.port == 8080
    assert defaults.global_.db.name == "kowabunga"
    sample = load(SAMPLE, environ={})
    assert sample.global_.smtp.sender == "Kowabunga <kowabunga@example.com>"
    assert sample.global_.http.trustedProxies == 1


@pytest.mark.parametrize("text, words", [
    ("global:\n  htpp:\n    port: 1\n", "unknown configuration key global.htpp"),
    ("global:\n  http:\n    port: eighty\n", "global.http.port must be a int"),
    ("global:\n  http:\n    port: 70000\n", "between 1 and 65535"),
    ("global:\n  logLevel: LOUD\n", "global.logLevel must be one of"),
    ("global:\n  jwt:\n    signature: short\n", "at least 32 bytes"),
    ("global:\n  apiKey: short\n", "at least 32 characters"),
    ("global:\n  db:\n    uri: postgres://x\n", "mongodb://"),
    ("global: [1, 2]\n", "must be a mapping"),
    ("global:\n  smtp:\n    security: maybe\n", "starttls, ssl or none"),
    ("- a list\n", "mapping at its top level"),
    ("global: {unclosed\n", "not valid YAML"),
])
def test_mistakes_are_refused_with_the_key_named(tmp_path, text, words):
    with pytest.raises(ConfigError) as error:
        load(write(tmp_path, text), environ={})
    assert words in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load(tmp_path / "absent.yml", environ={})


def test_secrets_from_the_environment_win(tmp_path):
    path = write(tmp_path, "global:\n  apiKey: " + "f" * 40 + "\n")
    config = load(path, environ={"KAHUNA_API_KEY": "e" * 40, "KAHUNA_SMTP_PASSWORD": "pw",
                                 "KAHUNA_DB_URI": "mongodb://db.example:27017/", "KAHUNA_HTTP_PORT": "9090"})
    assert config.global_.apiKey == "e" * 40
    assert config.global_.smtp.password == "pw"
    assert config.global_.db.uri == "mongodb://db.example:27017/"
    assert config.global_.http.port == 9090
