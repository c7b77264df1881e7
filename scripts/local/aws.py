"""moto's server on 127.0.0.1, the local stand-in for AWS that the drill and tests start.

``LocalAws`` runs a ``ThreadedMotoServer`` on a free port and hands out clients that carry fixed
dummy credentials and the local endpoint, so code under test can never reach a real AWS account
whatever the environment holds. moto proves the shape of API calls, not AWS's semantics: it runs
no Route 53 health checks and copies no objects for S3 replication (DESIGN.md lists its gaps).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

DUMMY_KEY = "drill"  # not a secret: moto accepts any key pair


class LocalAws:
    """moto's server for S3, Secrets Manager, SSM and Route 53 (any service moto has).

    Use ``start()`` / ``stop()``, or ``with LocalAws() as aws:``.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request on stderr; the caller's own progress is what belongs there.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> LocalAws:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._server.stop()

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def warm_up(self, regions: tuple[str, ...]) -> None:
        """moto builds each service's backend per region on first use (SSM loads AWS's public
        parameters); doing it up front keeps that out of anything a caller measures."""
        for region in regions:
            self.client("s3", region).list_buckets()
            self.client("secretsmanager", region).list_secrets()
            self.client("ssm", region).describe_parameters()
        self.client("route53", "us-east-1").list_hosted_zones()

    def session(self, region: str):
        import boto3

        return boto3.session.Session(
            aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name=region
        )

    def client(self, service: str, region: str) -> Any:
        return self.session(region).client(service, endpoint_url=self.endpoint_url)


class CachedClients:
    """A client factory with one client per (service, region): the shape
    ``scripts.runbooks.failover.Aws`` offers, pointed at a ``LocalAws``."""

    def __init__(self, aws: LocalAws):
        self._aws = aws
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        if (service, region) not in self._clients:
            self._clients[service, region] = self._aws.client(service, region)
        return self._clients[service, region]
