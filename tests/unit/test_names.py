"""kahuna.services.names: names that become the agents' object names."""

import pytest

from kahuna.errors import Unprocessable
from kahuna.services.names import check_name

LABEL_HINT = "expected a host name (ASCII letters, digits and '-', 1 to 63 characters, not starting or ending with '-')"
IMAGE_HINT = ("expected ASCII letters, digits, '-', '_' and '.' (no '..'), 1 to 128 characters, starting and ending "
              "with a letter or digit")


@pytest.mark.parametrize("name", ["web", "web-1", "a", "A1", "1", "x" * 63, "a-b-c", "Web-01"])
def test_valid_labels(name):
    assert check_name(name, "instance") == name


@pytest.mark.parametrize("name", [
    "", "-web", "web-", "x" * 64, "web_1", "web.1", "web/1", "../etc", "web 1", "web\n", "web\x00", "wéb", "web\t",
])
def test_invalid_labels(name):
    with pytest.raises(Unprocessable) as caught:
        check_name(name, "Kompute")
    assert caught.value.reason == f"invalid Kompute name {name!r}: {LABEL_HINT}"


@pytest.mark.parametrize("name", ["disk", "disk-1", "disk_1.img", "a", "x" * 128, "web-os", "v1.2.3"])
def test_valid_image_names(name):
    assert check_name(name, "volume", label=False) == name


@pytest.mark.parametrize("name", [
    "", "a..b", ".hidden", "disk.", "_disk", "disk-", "x" * 129, "a/b", "../b", "disk\n", "disk 1", "pool/disk",
])
def test_invalid_image_names(name):
    with pytest.raises(Unprocessable) as caught:
        check_name(name, "volume", label=False)
    assert caught.value.reason == f"invalid volume name {name!r}: {IMAGE_HINT}"


@pytest.mark.parametrize("label", [True, False])
@pytest.mark.parametrize("name", [None, 42, ["web"]])
def test_a_name_must_be_a_string(name, label):
    with pytest.raises(Unprocessable) as caught:
        check_name(name, "Kylo", label=label)
    assert caught.value.reason == "invalid Kylo name: expected a string"
