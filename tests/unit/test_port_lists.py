"""kahuna.port_lists: port list expressions of firewall, NAT and load-balancer rules."""

import pytest

from kahuna.errors import BadRequest
from kahuna.port_lists import check_port, check_port_list


@pytest.mark.parametrize("expression", ["22", "1", "65535", "22,80,443", "8000-8080", "80-80", "22,8000-8080,9090",
                                        " 22, 80 "])
def test_valid_expressions_are_returned_as_given(expression):
    assert check_port_list(expression) == expression


@pytest.mark.parametrize(("expression", "fault"), [
    ("0", "One of the specified ports is < 1"),
    ("65536", "One of the specified ports is > 65535"),
    ("22,0-80", "One of the specified ports is < 1"),
    ("1-2-3", "Port range has more than 2 elements"),
    ("80-22", "In range 80-22, the last port is lower than the first"),
    ("22,9000-8000", "In range 9000-8000, the last port is lower than the first"),
    ("ssh", "'ssh' is not a port number"),
    ("", "'' is not a port number"),
    ("22,", "'' is not a port number"),
    ("-22", "'' is not a port number"),
    ("+22", "'+22' is not a port number"),
    ("2 2", "'2 2' is not a port number"),
])
def test_invalid_expressions_name_the_fault(expression, fault):
    with pytest.raises(BadRequest) as caught:
        check_port_list(expression)
    assert caught.value.status == 400
    assert caught.value.reason == f"Invalid port list expression: '{expression}'. {fault}"


@pytest.mark.parametrize("port", [1, 22, 65535])
def test_check_port(port):
    assert check_port(port) == port


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_check_port_refuses(port):
    with pytest.raises(BadRequest) as caught:
        check_port(port)
    assert caught.value.reason == f"port {port} is out of range: expected 1 to 65535"
