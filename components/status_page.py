"""StatusPage: the public status page (static HTML + JSON) that still answers when the primary
region is down.

What it is made of, and why each part is needed for it to *work* (not only to deploy):

- a ReplicatedBucket whose home copy is in the DR region and whose replicas are in the third and
  the primary region. Updates are written to the home copy (``drctl recover`` and ``failover``
  publish there, scripts/dataops/status_page.py), so they need nothing from the primary region;
  replication carries them on. The copies keep every secure default of ReplicatedBucket
  (versioned, SSE-KMS under a multi-Region key, Block Public Access on, TLS only, ACLs off).
- a CloudFront distribution with an **origin group**: the DR copy first, the third-region copy on
  failover. CloudFront fails over when it cannot connect to the first origin, or when it answers
  one of the failover status codes, and only for GET, HEAD and OPTIONS requests
  (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/high_availability_origin_failover.html),
  so the behaviour allows exactly those. By default CloudFront tries an origin 3 times for 10 s
  each before failing over; the first origin gets one attempt of ``failover_timeout_s`` so a
  dead region costs a viewer seconds, not 30 s.
- **origin access control** on both origins (SigV4, always signing): the only way CloudFront can
  read SSE-KMS objects from a private bucket. It needs, on every copy, a bucket policy that lets
  ``cloudfront.amazonaws.com`` call s3:GetObject with ``AWS:SourceArn`` = this distribution, and
  on the key, kms:Decrypt for the same principal and condition
  (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html).
  Both grants are passed to ReplicatedBucket as ``cloudfront_readers``. OAC cannot sign requests
  to an S3 *website* endpoint, so the origins are the buckets' regional REST endpoints and the
  distribution's default root object serves ``index.html``.
- a cache policy with short TTLs (objects carry ``Cache-Control: max-age=<cache_ttl_s>``), so a
  status update reaches viewers within seconds while the edge still absorbs the load of everyone
  refreshing during an outage.

The policy rules in policy/status_page_rules.py check each of these requirements.

CloudFront's control plane (creating or changing a distribution, certificates for it) lives in
us-east-1, its data plane does not: a distribution keeps serving when us-east-1 is lost, but a
stack cannot create a new one then. Declare the page before you need it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.objectives import ConfigError, Objectives, class_tags
from components.replicated_bucket import ReplicatedBucket, ReplicatedBucketArgs

DATASET = "status-page"
DATA_CLASS = "operational"
# S3 answers 403 for a missing object when the reader may not list the bucket, and 5xx when the
# region is in trouble: each of them sends the viewer's request on to the other copy.
FAILOVER_STATUS_CODES = (403, 404, 500, 502, 503, 504)
FAILOVER_METHODS = ("GET", "HEAD", "OPTIONS")
PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")
HOME_ORIGIN = "home"
FAILOVER_ORIGIN = "failover"
ORIGIN_GROUP = "copies"


@dataclass
class StatusPageArgs:
    """Arguments of StatusPage.

    objectives: the stack's Objectives; regions come from here.
    title: the page's heading; default "Platform status".
    home_region: the copy that takes updates and the first origin; default the DR region.
    failover_region: the second origin; default the third region.
    alarm_topic_arns: region -> SNS topic for the copies' replication alarms; default none.
    failover_timeout_s: connection timeout of the first origin, one attempt (1-10); default 3.
    cache_ttl_s: how long the edge keeps a page; default 10 (the publisher sets max-age to it).
    price_class: CloudFront price class; default PriceClass_100.
    """

    objectives: Objectives
    title: str = "Platform status"
    home_region: str | None = None
    failover_region: str | None = None
    alarm_topic_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    failover_timeout_s: int = 3
    cache_ttl_s: int = 10
    price_class: str = "PriceClass_100"


def _validate(args: StatusPageArgs) -> tuple[str, str]:
    regions = args.objectives.regions
    home = args.home_region or regions.dr
    failover = args.failover_region or regions.third
    if home == regions.primary:
        raise ConfigError(
            "statusPage.homeRegion", home, f"a region other than primaryRegion ({regions.primary})"
        )
    if failover in (home, regions.primary) or failover not in regions.all:
        raise ConfigError(
            "statusPage.failoverRegion",
            failover,
            f"one of the stack's regions other than {home} and {regions.primary}",
        )
    if not 1 <= args.failover_timeout_s <= 10:
        raise ConfigError(
            "statusPage.failoverTimeout", args.failover_timeout_s, "1 to 10 seconds (CloudFront)"
        )
    if not 1 <= args.cache_ttl_s <= 300:
        raise ConfigError("statusPage.cacheTtl", args.cache_ttl_s, "1 to 300 seconds")
    if args.price_class not in PRICE_CLASSES:
        raise ConfigError("statusPage.priceClass", args.price_class, ", ".join(PRICE_CLASSES))
    return home, failover


class StatusPage(pulumi.ComponentResource):
    """Outputs: ``bucket_names`` (region -> name), ``home_region``, ``failover_region``,
    ``url``, ``domain_name``, ``distribution_id``, ``distribution_arn``, ``cache_ttl_s``."""

    TYPE = "platform-dr:status_page:StatusPage"

    def __init__(self, name: str, args: StatusPageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, None, opts)
        home, failover = _validate(args)
        child = pulumi.ResourceOptions(parent=self)
        regions = args.objectives.regions
        # The bucket and key policies name the distribution, and the distribution's origins name
        # the buckets: the ARN is passed on once the distribution exists (no cycle in the graph:
        # buckets -> distribution -> policies).
        distribution_arn, resolve_arn = pulumi.deferred_output()
        self.site = ReplicatedBucket(
            f"{name}-site",
            ReplicatedBucketArgs(
                objectives=args.objectives,
                data_class=DATA_CLASS,
                dataset=DATASET,
                home_region=home,
                replica_regions=[failover, *(r for r in regions.all if r not in (home, failover))],
                alarm_topic_arns=args.alarm_topic_arns,
                cloudfront_readers=[distribution_arn],
            ),
            opts=child,
        )
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            description="status page: CloudFront signs every request to the bucket copies",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        cache = aws.cloudfront.CachePolicy(
            f"{name}-cache",
            comment="status page: short TTLs, so an update reaches viewers within seconds",
            min_ttl=0,
            default_ttl=args.cache_ttl_s,
            max_ttl=args.cache_ttl_s * 6,
            parameters_in_cache_key_and_forwarded_to_origin={
                "cookies_config": {"cookie_behavior": "none"},
                "headers_config": {"header_behavior": "none"},
                "query_strings_config": {"query_string_behavior": "none"},
                "enable_accept_encoding_gzip": True,
                "enable_accept_encoding_brotli": True,
            },
            opts=child,
        )
        origins = [
            {
                "origin_id": HOME_ORIGIN,
                "domain_name": self.site.bucket_domain_names[home],
                "origin_access_control_id": oac.id,
                "connection_attempts": 1,
                "connection_timeout": args.failover_timeout_s,
            },
            {
                "origin_id": FAILOVER_ORIGIN,
                "domain_name": self.site.bucket_domain_names[failover],
                "origin_access_control_id": oac.id,
            },
        ]
        distribution = aws.cloudfront.Distribution(
            f"{name}-cdn",
            comment=f"{args.title}: answers from {home}, then {failover}",
            enabled=True,
            is_ipv6_enabled=True,
            http_version="http2and3",
            price_class=args.price_class,
            default_root_object="index.html",
            origins=origins,
            origin_groups=[
                {
                    "origin_id": ORIGIN_GROUP,
                    "failover_criteria": {"status_codes": list(FAILOVER_STATUS_CODES)},
                    "members": [{"origin_id": HOME_ORIGIN}, {"origin_id": FAILOVER_ORIGIN}],
                }
            ],
            default_cache_behavior={
                "target_origin_id": ORIGIN_GROUP,
                "viewer_protocol_policy": "redirect-to-https",
                "allowed_methods": list(FAILOVER_METHODS),
                "cached_methods": ["GET", "HEAD"],
                "cache_policy_id": cache.id,
                "compress": True,
            },
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            viewer_certificate={
                "cloudfront_default_certificate": True,
                "minimum_protocol_version": "TLSv1.2_2021",
            },
            tags=class_tags(DATA_CLASS, DATASET),
            opts=child,
        )
        resolve_arn(distribution.arn)
        self.bucket_names = self.site.bucket_names
        self.home_region = home
        self.failover_region = failover
        self.cache_ttl_s = args.cache_ttl_s
        self.domain_name = distribution.domain_name
        self.url = distribution.domain_name.apply(lambda d: f"https://{d}/")
        self.distribution_id = distribution.id
        self.distribution_arn = distribution.arn
        self.register_outputs(
            {
                "bucket_names": self.bucket_names,
                "home_region": home,
                "failover_region": failover,
                "url": self.url,
                "distribution_arn": self.distribution_arn,
            }
        )

    @property
    def publish_outputs(self) -> dict[str, pulumi.Input]:
        """What the publisher (scripts/dataops/status_page.py) needs, as a stack output."""
        return {
            "bucketNames": self.bucket_names,
            "homeRegion": self.home_region,
            "failoverRegion": self.failover_region,
            "url": self.url,
            "distributionId": self.distribution_id,
            "cacheTtlS": self.cache_ttl_s,
        }
