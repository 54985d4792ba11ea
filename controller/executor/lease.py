"""One coordination.k8s.io/v1 Lease, read and written as a `LeaseRecord`.

The elector in `process.leader` decides *when* to read and write; this module only knows how,
and keeps the traps of the wire format and the connection out of the protocol:

- Its own connection pool, with urllib3 retries off. A launcher saturating the shared
  pool cannot delay a renewal, and a retried request cannot silently run past the
  deadline the elector cut the call's timeout to: the elector's loop does the retrying.
- MicroTime. A time whose microseconds are zero is written one microsecond later, or
  the API server would refuse it.
- Optimistic concurrency. A read returns the ``resourceVersion`` next to the record and
  a replace sends it back, so a replica that lost a race gets a 409, not a silent win.

A missing Lease is the 404 `ApiException` of the read, as any other API failure is: what
an answer means for leadership is for the elector to judge.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from kubernetes import client


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that decide who leads."""

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int


@dataclass(frozen=True)
class StoredLease:
    """A Lease as read: its record, and the resourceVersion a replace must carry."""

    record: LeaseRecord
    resource_version: str | None


class LeaseClient:
    """Reads, creates and replaces one Lease over a connection pool of its own."""

    def __init__(self, shared: client.ApiClient, *, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        self._api = client.CoordinationV1Api(_private_client(shared))

    def read(self, *, timeout: float) -> StoredLease:
        lease = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        spec = lease.spec or client.V1LeaseSpec()
        record = LeaseRecord(
            holder=spec.holder_identity or "",
            lease_duration_seconds=spec.lease_duration_seconds or 0,
            acquire_time=spec.acquire_time,
            renew_time=spec.renew_time,
            transitions=spec.lease_transitions or 0,
        )
        resource_version = lease.metadata.resource_version if lease.metadata else None
        return StoredLease(record, resource_version)

    def create(self, record: LeaseRecord, *, timeout: float) -> None:
        self._api.create_namespaced_lease(
            self.namespace, self._body(record, None), _request_timeout=timeout
        )

    def replace(self, stored: StoredLease, record: LeaseRecord, *, timeout: float) -> None:
        """Overwrite the Lease as read in ``stored``; a 409 means someone wrote since."""
        self._api.replace_namespaced_lease(
            self.name,
            self.namespace,
            self._body(record, stored.resource_version),
            _request_timeout=timeout,
        )

    def close(self) -> None:
        self._api.api_client.close()

    def _body(self, record: LeaseRecord, resource_version: str | None) -> client.V1Lease:
        return client.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=client.V1ObjectMeta(
                name=self.name, namespace=self.namespace, resource_version=resource_version
            ),
            spec=client.V1LeaseSpec(
                holder_identity=record.holder or None,
                lease_duration_seconds=record.lease_duration_seconds,
                acquire_time=_micro_time(record.acquire_time),
                renew_time=_micro_time(record.renew_time),
                lease_transitions=record.transitions,
            ),
        )


def _micro_time(moment: datetime | None) -> datetime | None:
    # The client serialises with isoformat(), which drops the fraction when microseconds
    # are zero, and the API's MicroTime refuses a time without six fractional digits.
    if moment is None or moment.microsecond:
        return moment
    return moment.replace(microsecond=1)


def _private_client(shared: client.ApiClient) -> client.ApiClient:
    configuration = copy.deepcopy(shared.configuration)
    # One attempt per call: the elector's own loop retries, inside its deadline.
    configuration.retries = False
    private = client.ApiClient(configuration=configuration)
    private.default_headers.update(shared.default_headers)
    return private
