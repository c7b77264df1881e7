"""The shipped example stacks may be evaluated and previewed, never deployed.

``Pulumi.prod.yaml`` and ``Pulumi.dr.yaml`` carry ``platform-dr:example: true`` so that the offline
evaluation (Pulumi's mocks), ``drctl posture`` and the tests accept their reserved ``.example``
names. The same marker must not let a real ``pulumi up`` create backups of hosts that do not
exist and DNS records in a zone nobody owns: against a real engine, an update of a stack still
marked as an example is refused before any resource is declared. A preview is allowed (it shows
the plan and creates nothing), with a warning.
"""

from __future__ import annotations

import pulumi
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.proto import resource_pb2_grpc

from components.objectives import PROJECT, ConfigError, Objectives


def running_on_real_engine() -> bool:
    """True when the program talks to a Pulumi engine over gRPC (``pulumi up``/``preview``),
    False under ``pulumi.runtime.set_mocks``, whose monitor is an in-process object."""
    return isinstance(pulumi_settings.get_monitor(), resource_pb2_grpc.ResourceMonitorStub)


def refuse_example_deployment(objectives: Objectives, *, real_engine: bool, preview: bool) -> None:
    """Raise ConfigError for an update of an example stack on a real engine; warn on preview."""
    if not objectives.example or not real_engine:
        return
    if preview:
        pulumi.log.warn(
            f"this stack is marked {PROJECT}:example: a preview only; an update is refused until "
            "the marker is removed and every infrastructure key names real infrastructure"
        )
        return
    raise ConfigError(
        "example",
        True,
        "an example stack is evaluated offline and previewed, never deployed: delete the "
        f"{PROJECT}:example line and set every infrastructure key to real infrastructure "
        "(docs/aws-prerequisites.md lists them) before `pulumi up`",
    )
