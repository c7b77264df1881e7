"""AWS semantics of the status page: what CloudFront needs to serve a private, SSE-KMS bucket
through origin access control, and to keep answering when a region is lost.

Pure standard-library rules in the ResourceRule style of rules.py (which registers ``RULES`` at
its end), each ``props -> [problem]`` with a compliant and a non-compliant fixture in
tests/policy/test_status_page_rules.py. Mocks accept every one of these mistakes; AWS does not
serve the page afterwards. Sources:

- [OAC] Restrict access to an Amazon S3 origin,
  https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html
  (OAC, not the legacy OAI, for SSE-KMS; the bucket policy and the KMS key policy grant the
  ``cloudfront.amazonaws.com`` service principal with ``AWS:SourceArn`` = the distribution; OAC
  cannot sign requests to an S3 website endpoint).
- [FAILOVER] Optimize high availability with CloudFront origin failover,
  https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/high_availability_origin_failover.html
  (an origin group of two origins; failover only for GET, HEAD and OPTIONS; by default 3
  connection attempts of 10 s each before failing over).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# rules.py imports this module at its end, as policy.rules (drctl, tests) or as the top-level
# module rules (the policy host runs the pack from inside policy/).
if __package__:
    from .rules import Mechanism, ResourceRule, _as_list, _get, _policy_doc, _statements, by_name
else:  # pragma: no cover - exercised by the subprocess test of the real pack
    from rules import (  # type: ignore[no-redef]
        Mechanism,
        ResourceRule,
        _as_list,
        _get,
        _policy_doc,
        _statements,
        by_name,
    )

CLOUDFRONT = "cloudfront.amazonaws.com"
DISTRIBUTION_TYPE = "aws:cloudfront/distribution:Distribution"
OAC_TYPE = "aws:cloudfront/originAccessControl:OriginAccessControl"
FAILOVER_METHODS = {"GET", "HEAD", "OPTIONS"}
REQUIRED_FAILOVER_CODES = {500, 502, 503, 504}
MAX_FAILOVER_WAIT_S = 10  # connection timeout x attempts of the first origin
DEFAULT_CONNECTION_TIMEOUT_S, DEFAULT_CONNECTION_ATTEMPTS = 10, 3
_DISTRIBUTION_ARN = re.compile(r"^arn:aws[a-z-]*:cloudfront::\d{12}:distribution/[A-Z0-9]+$")
_S3_REST = re.compile(r"^[a-z0-9.-]+\.s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com$")
_S3_WEBSITE = re.compile(r"\.s3-website[.-]")


def _grants_cloudfront(statement: Mapping[str, Any]) -> bool:
    principal = statement.get("Principal")
    services = _as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
    return statement.get("Effect") == "Allow" and CLOUDFRONT in services


def _source_arn_problems(statement: Mapping[str, Any]) -> list[str]:
    """A grant to the CloudFront principal must name the distributions: without AWS:SourceArn,
    every distribution in every account could read through it (confused deputy)."""
    sid = statement.get("Sid", "?")
    equals = _get(statement, "Condition", "StringEquals") or {}
    values = _as_list(equals.get("AWS:SourceArn") or equals.get("aws:SourceArn"))
    if not values:
        return [f"statement {sid} grants {CLOUDFRONT} without a StringEquals AWS:SourceArn"]
    bad = [v for v in values if not _DISTRIBUTION_ARN.match(str(v))]
    return [f"statement {sid}: AWS:SourceArn {v!r} is not one distribution's ARN" for v in bad]


def _cloudfront_grants(props: Mapping[str, Any]):
    """(sid, actions, statement) of each statement of the policy that allows CloudFront."""
    for statement in _statements(_policy_doc(props.get("policy"))):
        if _grants_cloudfront(statement):
            yield statement.get("Sid", "?"), set(_as_list(statement.get("Action"))), statement


def s3_cloudfront_grant_scoped(props: Mapping[str, Any]) -> list[str]:
    """[OAC] The bucket policy lets CloudFront read objects (s3:GetObject on ``<bucket>/*``) for
    named distributions only, and nothing else."""
    problems = []
    for sid, actions, statement in _cloudfront_grants(props):
        if actions != {"s3:GetObject"}:
            problems.append(f"statement {sid} grants {sorted(actions)}; CloudFront reads only")
        resources = _as_list(statement.get("Resource"))
        if not resources or not all(str(r).endswith("/*") for r in resources):
            problems.append(f"statement {sid}: s3:GetObject applies to objects (<bucket>/*)")
        problems += _source_arn_problems(statement)
    return problems


def kms_cloudfront_grant_scoped(props: Mapping[str, Any]) -> list[str]:
    """[OAC] A key that encrypts objects CloudFront serves gives the CloudFront principal
    kms:Decrypt, for named distributions only; without it every SSE-KMS object answers 403."""
    problems = []
    for sid, actions, statement in _cloudfront_grants(props):
        if "kms:Decrypt" not in actions:
            problems.append(f"statement {sid} grants {CLOUDFRONT} no kms:Decrypt")
        extra = actions - {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"}
        if extra:
            problems.append(f"statement {sid} grants {CLOUDFRONT} {sorted(extra)} as well")
        problems += _source_arn_problems(statement)
    return problems


def cloudfront_oac_signs_s3(props: Mapping[str, Any]) -> list[str]:
    """[OAC] An origin access control for S3 signs every request with SigV4; with ``never`` or
    ``no-override`` a private bucket answers 403."""
    problems = []
    if props.get("originAccessControlOriginType") != "s3":
        problems.append("origin type must be 's3'")
    if props.get("signingBehavior") != "always":
        problems.append(f"signing behavior is {props.get('signingBehavior')!r}, must be 'always'")
    if props.get("signingProtocol") != "sigv4":
        problems.append("signing protocol must be 'sigv4'")
    return problems


def _origin_region(domain: str) -> str | None:
    match = _S3_REST.match(domain or "")
    return match.group("region") if match else None


def cloudfront_s3_origins_use_oac(props: Mapping[str, Any]) -> list[str]:
    """[OAC] Every S3 origin is a bucket's REST endpoint signed by an origin access control: a
    website endpoint cannot be signed (the bucket would have to be public), and the legacy
    origin access identity cannot read SSE-KMS objects."""
    origins = _as_list(props.get("origins"))
    if not origins:
        return ["the distribution declares no origin"]
    problems = []
    for origin in origins:
        oid = origin.get("originId", "?")
        domain = str(origin.get("domainName") or "")
        if _S3_WEBSITE.search(domain):
            problems.append(f"origin {oid} is an S3 website endpoint; OAC cannot sign for it")
            continue
        if not _S3_REST.match(domain):
            continue
        if not origin.get("originAccessControlId"):
            problems.append(f"origin {oid} reads S3 without an origin access control")
        if _get(origin, "s3OriginConfig", "originAccessIdentity"):
            problems.append(f"origin {oid} uses a legacy origin access identity")
    return problems


def cloudfront_fails_over_between_regions(props: Mapping[str, Any]) -> list[str]:
    """[FAILOVER] The default behaviour serves from an origin group of two origins in different
    regions; failover covers 500/502/503/504; the behaviour allows only the methods failover
    applies to; the first origin gives up within ``MAX_FAILOVER_WAIT_S``. A distribution in this
    project exists to answer when a region is down: one origin cannot."""
    origins = {o.get("originId"): o for o in _as_list(props.get("origins"))}
    groups = {g.get("originId"): g for g in _as_list(props.get("originGroups"))}
    behavior = props.get("defaultCacheBehavior") or {}
    target = behavior.get("targetOriginId")
    if target not in groups:
        return [f"the default behaviour targets {target!r}, not an origin group"]
    group = groups[target]
    problems = []
    members = [m.get("originId") for m in _as_list(group.get("members"))]
    if len(members) != 2 or any(m not in origins for m in members):
        return [f"origin group {target} must have two declared origins, has {members}"]
    regions = [_origin_region(str(origins[m].get("domainName") or "")) for m in members]
    if None in regions or regions[0] == regions[1]:
        problems.append(
            f"origin group {target} members are not S3 copies in two regions: {regions}"
        )
    codes = {int(c) for c in _as_list(_get(group, "failoverCriteria", "statusCodes"))}
    missing = REQUIRED_FAILOVER_CODES - codes
    if missing:
        problems.append(f"origin group {target} does not fail over on {sorted(missing)}")
    methods = set(_as_list(behavior.get("allowedMethods")))
    if not methods or methods - FAILOVER_METHODS:
        problems.append(
            f"the default behaviour allows {sorted(methods - FAILOVER_METHODS)}; CloudFront "
            "fails over only GET, HEAD and OPTIONS"
        )
    first = origins[members[0]]
    timeout = int(first.get("connectionTimeout") or DEFAULT_CONNECTION_TIMEOUT_S)
    attempts = int(first.get("connectionAttempts") or DEFAULT_CONNECTION_ATTEMPTS)
    if timeout * attempts > MAX_FAILOVER_WAIT_S:
        problems.append(
            f"origin {members[0]} is tried {attempts} x {timeout} s before failover; at most "
            f"{MAX_FAILOVER_WAIT_S} s"
        )
    return problems


def cloudfront_viewers_use_https(props: Mapping[str, Any]) -> list[str]:
    behaviors = [
        props.get("defaultCacheBehavior") or {},
        *_as_list(props.get("orderedCacheBehaviors")),
    ]
    plain = [
        str(b.get("pathPattern", "default"))
        for b in behaviors
        if b.get("viewerProtocolPolicy") not in ("redirect-to-https", "https-only")
    ]
    return [f"behaviours {plain} serve plain HTTP"] if plain else []


RULES: list[ResourceRule] = [
    ResourceRule(
        "cloudfront-s3-origins-use-oac",
        "S3 origins are REST endpoints read through an origin access control (not OAI).",
        DISTRIBUTION_TYPE,
        cloudfront_s3_origins_use_oac,
    ),
    ResourceRule(
        "cloudfront-origin-failover",
        "Distributions serve from a two-region origin group that fails over fast on 5xx.",
        DISTRIBUTION_TYPE,
        cloudfront_fails_over_between_regions,
    ),
    ResourceRule(
        "cloudfront-viewer-https",
        "Viewers reach distributions over HTTPS only.",
        DISTRIBUTION_TYPE,
        cloudfront_viewers_use_https,
    ),
    ResourceRule(
        "cloudfront-oac-signs-s3",
        "Origin access controls sign every S3 request with SigV4.",
        OAC_TYPE,
        cloudfront_oac_signs_s3,
    ),
    ResourceRule(
        "s3-cloudfront-grant-scoped",
        "Bucket policies let CloudFront only s3:GetObject, for named distributions (SourceArn).",
        "aws:s3/bucketPolicy:BucketPolicy",
        s3_cloudfront_grant_scoped,
    ),
    ResourceRule(
        "kms-cloudfront-grant-scoped",
        "Key policies give CloudFront kms:Decrypt for named distributions only (SourceArn).",
        "aws:kms/key:Key",
        kms_cloudfront_grant_scoped,
    ),
    ResourceRule(
        "kms-replica-cloudfront-grant-scoped",
        "Replica key policies give CloudFront kms:Decrypt for named distributions only.",
        "aws:kms/replicaKey:ReplicaKey",
        kms_cloudfront_grant_scoped,
    ),
]


# ---------------------------------------------------------------------------------------------
# Across resources: the distribution, the copies it reads and their keys name each other.

STATUS_PAGE_TYPE = "platform-dr:status_page:StatusPage"


def _cloudfront_source_arns(policy: Any) -> set[str]:
    found: set[str] = set()
    for _, _, statement in _cloudfront_grants({"policy": policy}):
        equals = _get(statement, "Condition", "StringEquals") or {}
        found |= {str(v) for v in _as_list(equals.get("AWS:SourceArn"))}
    return found


def status_page_mechanisms(resources: Any, objectives: Mapping) -> list:
    """[OAC][FAILOVER] For every StatusPage: each copy the distribution reads has a bucket policy
    and a key policy granting CloudFront for the *same* distribution. One rule cannot see this
    (each sees one resource); a missing half serves 403 for every page. The result is a
    Mechanism of the status-page dataset, so posture and the stack policy show it per class."""
    named = by_name(resources)
    found = []
    for page in (r for r in resources if r.type == STATUS_PAGE_TYPE):
        distribution = named.get(f"{page.name}-cdn")
        problems: list[str] = []
        regions: list[str] = []
        if distribution is None:
            problems.append(f"{page.name}: no distribution {page.name}-cdn")
        for origin in _as_list(getattr(distribution, "props", {}).get("origins")):
            region = _origin_region(str(origin.get("domainName") or ""))
            if region is None:
                continue
            regions.append(region)
            policy = named.get(f"{page.name}-site-{region}-policy")
            key = named.get(f"{page.name}-site-key-{region}")
            bucket_arns = _cloudfront_source_arns(getattr(policy, "props", {}).get("policy"))
            key_arns = _cloudfront_source_arns(getattr(key, "props", {}).get("policy"))
            if not bucket_arns:
                problems.append(
                    f"status page: the {region} copy's bucket policy lets no distribution read it"
                )
            if not key_arns:
                problems.append(f"status page: the {region} key lets no distribution decrypt")
            if bucket_arns and key_arns and bucket_arns != key_arns:
                problems.append(
                    f"status page: in {region} the bucket policy grants {sorted(bucket_arns)} "
                    f"but the key grants {sorted(key_arns)}"
                )
        description = (
            f"status-page: CloudFront reads {' then '.join(regions) or 'no copy'} through OAC; "
            "bucket and key policies grant the same distribution"
        )
        found.append(Mechanism("status-page", "operational", description, None, False, problems))
    return found
