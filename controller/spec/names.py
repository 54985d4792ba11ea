"""The Kubernetes naming rules that DAG names, task names and labels must follow.

DAG and task names end up as label values and pod-name parts; labels given in a DAG
are copied onto pods. The API server rejects a pod whose labels break these rules,
and it does so only when the pod is created, so the validator applies them first.
"""

from __future__ import annotations

import re

from controller.base.naming import is_label_value

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
RESERVED_LABEL_PREFIX = "kubedag.io/"
"""Labels kubedag sets on its pods (and selects them by); a DAG may not set them."""

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid label or annotation key, or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= DNS1123_SUBDOMAIN_MAX and _DNS1123_SUBDOMAIN.match(prefix)):
        return f"key {key!r}: the prefix before '/' must be a DNS-1123 subdomain"
    if len(name) > DNS1123_LABEL_MAX or _QUALIFIED_NAME.match(name) is None:
        return (
            f"key {key!r}: the name must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None when it is."""
    if not is_label_value(value):
        return (
            f"label value {value!r} must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (or empty)"
        )
    return None
