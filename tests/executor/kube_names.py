"""Kubernetes' own rule for a DNS-1123 label, to check the names the controller makes."""

from __future__ import annotations

import re

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns_label(value: str) -> bool:
    return len(value) <= 63 and DNS_LABEL.match(value) is not None
