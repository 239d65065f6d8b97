"""Names that become the agents' object names: checked once, at creation, the same way everywhere.

An instance's or a Kompute's name is its libvirt domain and its DNS label; a Kawaii's or Konvey's
name goes into its VMs' names; a volume's is its RBD image (``<pool>/<name>``); a Kylo's, its CephFS
subvolume and NFS export; a project's, part of its Kawaii VMs' names. A ``/`` or ``..`` in such a
name is a path on an agent, a control character ends up in its commands and logs: such names are
refused (422) before anything is written.
"""

from __future__ import annotations

import re

from kahuna.errors import Unprocessable

# Matched whole (fullmatch: "$" would let a final newline through).
#: A DNS label (RFC 1123): what instance, Kompute, Kawaii/Konvey VM, Kylo and project names must be.
LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
#: A volume name: an RBD image name that is also safe as a file name on the agents.
IMAGE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,126}[A-Za-z0-9])?")


def check_name(name: str, what: str, label: bool = True) -> str:
    """*name*, if it is a valid name for a *what* (a DNS label, or with ``label=False`` an image name);
    else 422 saying what is expected."""
    if not isinstance(name, str):
        raise Unprocessable(f"invalid {what} name: expected a string")
    if label:
        if not LABEL.fullmatch(name):
            raise Unprocessable(f"invalid {what} name {name!r}: expected a host name (ASCII letters, digits and "
                                f"'-', 1 to 63 characters, not starting or ending with '-')")
    elif not IMAGE.fullmatch(name) or ".." in name:
        raise Unprocessable(f"invalid {what} name {name!r}: expected ASCII letters, digits, '-', '_' and '.' "
                            f"(no '..'), 1 to 128 characters, starting and ending with a letter or digit")
    return name
