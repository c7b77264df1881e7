"""Evaluate the real ``__main__.py`` for one stack under Pulumi's mocks: no cloud, no Pulumi CLI.

This is Pulumi's own unit-testing method (``pulumi.runtime.set_mocks``). Every resource the
program declares goes through the real ``pulumi_aws``/``pulumi_postgresql`` classes, whose typed
args reject unknown arguments, and is recorded with its inputs so that tests, ``drctl posture`` and
the policy rules can read exactly what ``pulumi up`` would be asked to create.

Each evaluation runs in a fresh ``contextvars`` context, because the Pulumi runtime keeps its
settings and root stack in context variables; that lets prod and dr be evaluated in one process.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.objectives import PROJECT
from scripts import locations
from scripts.common import DrctlError, ExitCode

# The checkout this module sits in: tests and benchmarks use it; commands use the project directory.
ROOT = Path(__file__).resolve().parents[2]
MOCK_ACCOUNT = "111122223333"
MOCK_ORG = "organization"


@dataclass
class DeclaredResource:
    """One resource as the program declared it: what CrossGuard and posture both look at."""

    type: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]
    custom: bool
    import_id: str = ""

    @property
    def region(self) -> str:
        return self.inputs.get("region", "")

    @property
    def tags(self) -> dict[str, str]:
        return self.inputs.get("tags") or {}


@dataclass
class Evaluation:
    stack: str
    resources: list[DeclaredResource]
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_token: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> DeclaredResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    @property
    def resource_count(self) -> int:
        """Resources that pulumi up would create or adopt (component wrappers excluded)."""
        return sum(1 for r in self.resources if r.custom)


def _arn(type_token: str, name: str, region: str) -> str:
    service = type_token.split(":")[1].split("/")[0]
    return f"arn:aws:{service}:{region or 'us-east-1'}:{MOCK_ACCOUNT}:{name}"


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers the engine's calls the way AWS would shape them, and records every registration."""

    def __init__(self, stack_outputs: Mapping[str, Mapping[str, Any]] | None = None):
        self.stack_outputs = dict(stack_outputs or {})
        self.records: list[DeclaredResource] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        region = inputs.get("region", "")
        state: dict[str, Any] = dict(inputs)
        resource_id = args.resource_id or f"{args.name}-id"
        if args.typ == "pulumi:pulumi:StackReference":
            ref = inputs.get("name", args.name)
            if ref not in self.stack_outputs:
                raise KeyError(f"no mocked outputs for stack reference {ref!r}")
            state["outputs"] = dict(self.stack_outputs[ref])
            resource_id = ref
        elif args.typ == "aws:s3/bucket:Bucket":
            # bucket_prefix gets a unique suffix from AWS; a stable hash stands in for it here,
            # marked so that nobody takes an offline value for a real bucket.
            suffix = "example" + hashlib.sha1(args.name.encode()).hexdigest()[:8]
            prefixed = inputs.get("bucketPrefix") and f"{inputs['bucketPrefix']}{region}-{suffix}"
            bucket = inputs.get("bucket") or args.resource_id or prefixed or args.name
            resource_id = bucket
            state.update(
                bucket=bucket,
                arn=f"arn:aws:s3:::{bucket}",
                bucketRegionalDomainName=f"{bucket}.s3.{region or 'us-east-1'}.amazonaws.com",
            )
        elif args.typ in ("aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey"):
            key_id = "mrk-example" + hashlib.sha1(args.name.encode()).hexdigest()[:25]
            resource_id = key_id
            state.update(key_id=key_id, arn=_arn(args.typ, f"key/{key_id}", region))
        elif args.typ == "aws:rds/instance:Instance":
            ident = inputs.get("identifier") or args.name
            address = f"{ident}.c0ffee.{region or 'us-east-1'}.rds.amazonaws.com"
            state.update(identifier=ident, address=address, endpoint=f"{address}:5432")
            state.setdefault("arn", _arn(args.typ, f"db:{ident}", region))
        elif args.typ == "aws:cloudfront/distribution:Distribution":
            # CloudFront is global: its ARNs have no region, and ids look like E2QWRUHEXAMPLE.
            resource_id = "E" + hashlib.sha1(args.name.encode()).hexdigest()[:13].upper()
            state.update(
                arn=f"arn:aws:cloudfront::{MOCK_ACCOUNT}:distribution/{resource_id}",
                domainName=f"{resource_id.lower()}.cloudfront.net",
            )
        elif args.typ == "aws:ec2/networkInterface:NetworkInterface":
            state.setdefault("private_ip", "10.42.0.10")
        elif args.typ == "aws:ec2/vpc:Vpc" and inputs.get("assignGeneratedIpv6CidrBlock"):
            # AWS assigns a /56 from its own pool (documentation prefix 2001:db8::/32 here).
            state["ipv6CidrBlock"] = "2001:db8:42:4200::/56"
            state.setdefault("arn", _arn(args.typ, args.name, region))
        elif args.typ == "aws:ssm/parameter:Parameter" and args.resource_id:
            # A read parameter: its current value, obviously not a real one.
            state.update(
                name=args.resource_id, value=f"offline-example-value-of:{args.resource_id}"
            )
            state.setdefault("arn", _arn(args.typ, args.name, region))
        elif args.typ.startswith("aws:"):
            state.setdefault("arn", _arn(args.typ, args.name, region))
            state.setdefault("name", inputs.get("name") or args.name)
        self.records.append(
            DeclaredResource(
                type=args.typ,
                name=args.name,
                urn=f"urn:pulumi:{MOCK_ORG}::{PROJECT}::{args.typ}::{args.name}",
                id=resource_id,
                inputs=inputs,
                custom=args.custom,
                import_id=args.resource_id or "",
            )
        )
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": MOCK_ACCOUNT,
                "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/mock",
                "userId": "mock",
                "id": MOCK_ACCOUNT,
            }
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if args.token == "aws:secretsmanager/getRandomPassword:getRandomPassword":
            length = int(args.args.get("passwordLength") or 32)
            return {"randomPassword": "m" * length, "id": "mock-random"}
        if args.token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            # A rebuild stack copies an adopted secret's value; offline there is none.
            secret_id = args.args.get("secretId", "")
            return {
                "arn": secret_id,
                "id": secret_id,
                "secretId": secret_id,
                "secretString": f"offline-example-secret-of:{secret_id}",
                "versionId": "offline-example",
                "versionStages": ["AWSCURRENT"],
            }
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            region = args.args.get("region") or "us-east-1"
            names = [f"{region}{z}" for z in "abc"]
            return {"names": names, "zoneIds": names, "groupNames": [region], "id": region}
        raise NotImplementedError(f"evaluate.RecordingMocks has no answer for invoke {args.token}")


def read_stack_config(stack: str, root: Path | None = None) -> dict[str, Any]:
    """The ``config:`` block of Pulumi.<stack>.yaml in the project directory (scripts/locations.py).

    ``root`` defaults to the project directory (``--project-dir``, else the current directory),
    never the directory drctl is installed in.
    """
    return locations.read_stack_config(stack, root)


def _resolve(value: Any) -> tuple[Any, bool]:
    output = pulumi.Output.from_input(value)
    return _sync_await(output.future()), bool(_sync_await(output.is_secret()))


class _OutputsMonitor(pulumi_mocks.MockMonitor):
    """Keeps what each component registers as outputs: CrossGuard's stack policies see a
    component's outputs (not its inputs), so posture must read exactly those too."""

    def __init__(self, mocks: RecordingMocks):
        super().__init__(mocks)
        self.component_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResourceOutputs(self, request):  # noqa: N802 (gRPC method name)
        from pulumi.runtime import rpc

        self.component_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)


def _engine_shaped(records: list[DeclaredResource], monitor: _OutputsMonitor) -> None:
    for record in records:
        if record.custom or record.import_id:
            continue  # a custom (or read) resource's outputs include its inputs
        suffix = f"{record.type}::{record.name}"
        matches = [v for urn, v in monitor.component_outputs.items() if urn.endswith(suffix)]
        record.inputs = dict(matches[0]) if len(matches) == 1 else {}


def _run(
    stack: str,
    program: Path,
    config: dict[str, Any],
    mocks: RecordingMocks,
    secret_keys: tuple[str, ...] = (),
) -> Evaluation:
    monitor = _OutputsMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(
        {k: _as_config_text(v) for k, v in config.items()}, secret_keys=list(secret_keys)
    )
    pulumi_settings.SETTINGS.rpc_manager.clear()
    _sync_await(run_pulumi_func(lambda: runpy.run_path(str(program), run_name="__main__")))
    outputs: dict[str, Any] = {}
    secret: set[str] = set()
    root_stack = pulumi_settings.get_root_resource()
    for name, value in (getattr(root_stack, "outputs", None) or {}).items():
        outputs[name], is_secret = _resolve(value)
        if is_secret:
            secret.add(name)
    _engine_shaped(mocks.records, monitor)
    return Evaluation(stack, list(mocks.records), outputs, secret)


def _as_config_text(value: Any) -> Any:
    # The engine hands every config value to the program as text, as `pulumi config set` stores it.
    if locations.is_secure(value):
        return "[secret]"  # offline: the ciphertext is never decrypted; the key is marked secret
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value)  # structured config (--path) reaches the program as JSON text
    return value


def evaluate_stack(
    stack: str,
    *,
    root: Path | None = None,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
    secret_keys: tuple[str, ...] = (),
) -> Evaluation:
    """Evaluate ``root/__main__.py`` for ``stack`` and return every declared resource and output.

    ``root`` defaults to the project directory (scripts/locations.py), never drctl's own.

    ``config`` replaces the stack file's config; ``overrides`` patches it (``None`` deletes a key).
    ``stack_outputs`` answers StackReferences by fully qualified name; when it is omitted and the
    stack has ``rebuildFrom``, the referenced stack is evaluated first and its outputs are used.
    ``secret_keys``: config keys the engine would report as secret (``pulumi config set --secret``).
    """
    root = locations.project_dir() if root is None else Path(root)
    raw = dict(config if config is not None else read_stack_config(stack, root))
    secret_keys = (*secret_keys, *(k for k, v in raw.items() if locations.is_secure(v)))
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    if stack_outputs is None:
        stack_outputs = {}
        source = raw.get(f"{PROJECT}:rebuildFrom")
        if source:
            source_stack = source.split("/")[-1]
            stack_outputs = {source: evaluate_stack(source_stack, root=root).outputs}
    mocks = RecordingMocks(stack_outputs)
    program = root / "__main__.py"
    if not program.is_file():
        raise DrctlError(
            f"{root} has no __main__.py: drctl evaluates the project's own program; run it from "
            "the project directory or pass --project-dir",
            ExitCode.INVALID_CONFIG,
        )
    return contextvars.Context().run(_run, stack, program, raw, mocks, tuple(secret_keys))


__all__ = [
    "DeclaredResource",
    "Evaluation",
    "RecordingMocks",
    "evaluate_stack",
    "read_stack_config",
    "pulumi_mocks",
]
